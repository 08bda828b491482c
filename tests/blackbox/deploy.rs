//! The deployment files (Dockerfile, docker-compose.yml, .env.example) run for real as far as
//! they can without a container engine, which this machine kind lacks (the docker CLI is there,
//! `docker build` and `docker compose up` cannot run): no image is built, no container started.
//!
//! Every value comes from the files themselves (plain line parsing), so editing them changes what
//! runs here. Proved: the builder stage copies a complete build context, on which cargo's
//! manifest and `--locked` check passes; the runtime stage's ENV, ENTRYPOINT and CMD start the
//! gateway, its HEALTHCHECK passes against it and fails once it is stopped; compose's redis
//! `command` and `healthcheck` work on a real password-protected redis-server, and the api
//! service's `env_file` (made from .env.example as the compose header says) and `environment`
//! give a healthy gateway that stores its state in that Redis. Not proved: that the images build
//! (base images, apt-get, the release build in the container), the container user, networking
//! between services, published ports, volumes, restart policies and `depends_on` ordering.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::support::{apiproxy_bin, clean_command, client, eventually, free_port, output_text};

fn repo_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn read_repo_file(name: &str) -> String {
    let path = repo_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `text` without surrounding double quotes (JSON escapes decoded) or single quotes.
fn unquote(text: &str) -> String {
    let text = text.trim();
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        serde_json::from_str(text).unwrap_or_else(|_| text[1..text.len() - 1].to_string())
    } else if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        text[1..text.len() - 1].replace("''", "'")
    } else {
        text.to_string()
    }
}

/// A `["a", "b"]` list: a Dockerfile exec form or a YAML flow sequence of double-quoted strings
/// (both JSON here).
fn json_list(text: &str, what: &str) -> Vec<String> {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{what} is not a list of strings ({e}): {text}"))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One instruction: its keyword (upper case) and its arguments, continuation lines joined.
struct Instruction {
    keyword: String,
    args: String,
}

/// One build stage: `FROM image [AS name]` and the instructions up to the next `FROM`.
struct Stage {
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.args.as_str())
    }

    /// The last `keyword` instruction's arguments: the one in effect (CMD, USER, ...).
    fn last<'a>(&'a self, keyword: &'a str) -> Option<&'a str> {
        self.all(keyword).last()
    }

    /// The stage's ENV (`ENV K=V K2=V2`, or the old `ENV K V`), later values winning.
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for args in self.all("ENV") {
            let tokens: Vec<&str> = args.split_whitespace().collect();
            match tokens.first() {
                Some(first) if !first.contains('=') => {
                    env.insert(first.to_string(), unquote(&tokens[1..].join(" ")));
                }
                _ => {
                    for token in tokens {
                        let (key, value) = token
                            .split_once('=')
                            .unwrap_or_else(|| panic!("ENV: {token} is not KEY=value"));
                        env.insert(key.to_string(), unquote(value));
                    }
                }
            }
        }
        env
    }
}

struct Dockerfile {
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let mut stages: Vec<Stage> = Vec::new();
        let mut current = String::new();
        for line in read_repo_file("Dockerfile").lines() {
            let line = line.trim();
            // Comments (the `# syntax=` directive too) and blank lines, also inside continuations.
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(head) = line.strip_suffix('\\') {
                current.push_str(head);
                current.push(' ');
                continue;
            }
            current.push_str(line);
            let (keyword, args) = current
                .split_once(char::is_whitespace)
                .unwrap_or((&current, ""));
            let instruction = Instruction {
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_string(),
            };
            if instruction.keyword == "FROM" {
                let tokens: Vec<&str> = instruction
                    .args
                    .split_whitespace()
                    .filter(|t| !t.starts_with("--"))
                    .collect();
                let name = match tokens.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    _ => None,
                };
                stages.push(Stage {
                    name,
                    instructions: Vec::new(),
                });
            } else {
                stages
                    .last_mut()
                    .expect("the Dockerfile starts with FROM")
                    .instructions
                    .push(instruction);
            }
            current.clear();
        }
        Dockerfile { stages }
    }

    fn builder(&self) -> &Stage {
        &self.stages[0]
    }

    fn runtime(&self) -> &Stage {
        self.stages.last().expect("a FROM")
    }

    /// The runtime stage's ENTRYPOINT + CMD, as Docker combines their exec forms.
    fn command(&self) -> Vec<String> {
        let runtime = self.runtime();
        let entrypoint = runtime.last("ENTRYPOINT").expect("ENTRYPOINT");
        // A shell-form ENTRYPOINT runs under `/bin/sh -c`, which does not pass on `docker stop`'s
        // SIGTERM, and makes Docker ignore CMD.
        assert!(
            entrypoint.starts_with('['),
            "the ENTRYPOINT is in exec form: {entrypoint}"
        );
        let mut command = json_list(entrypoint, "ENTRYPOINT");
        if let Some(cmd) = runtime.last("CMD") {
            assert!(cmd.starts_with('['), "the CMD is in exec form: {cmd}");
            command.extend(json_list(cmd, "CMD"));
        }
        command
    }

    fn healthcheck(&self) -> Healthcheck {
        let args = self.runtime().last("HEALTHCHECK").expect("HEALTHCHECK");
        let mut timeout = Duration::from_secs(30); // Docker's default
        let mut rest = args;
        while let Some(option) = rest.strip_prefix("--") {
            let (option, after) = option
                .split_once(char::is_whitespace)
                .unwrap_or((option, ""));
            if let Some(value) = option.strip_prefix("timeout=") {
                timeout = docker_duration(value);
            }
            rest = after.trim_start();
        }
        let command = rest
            .strip_prefix("CMD")
            .unwrap_or_else(|| panic!("HEALTHCHECK runs a CMD: {args}"))
            .trim();
        let argv = if command.starts_with('[') {
            json_list(command, "HEALTHCHECK CMD")
        } else {
            // The shell form, which Docker runs with `/bin/sh -c`.
            vec!["/bin/sh".into(), "-c".into(), command.into()]
        };
        Healthcheck { argv, timeout }
    }
}

/// A Docker duration such as `5s`, `500ms` or `1m30s`.
fn docker_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("a duration: {text}"));
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            unit => panic!("a duration unit: {unit} in {text}"),
        };
        total += Duration::from_secs_f64(seconds);
        rest = &rest[unit_len..];
    }
    total
}

/// The image's HEALTHCHECK command and its `--timeout`.
struct Healthcheck {
    argv: Vec<String>,
    timeout: Duration,
}

impl Healthcheck {
    /// The command aimed at `port` instead of the image's `image_port`.
    fn on_port(&self, image_port: &str, port: u16) -> Vec<String> {
        let from = format!(":{image_port}/");
        assert!(
            self.argv.iter().any(|arg| arg.contains(&from)),
            "the HEALTHCHECK asks the port the image listens on ({image_port}): {:?}",
            self.argv
        );
        self.argv
            .iter()
            .map(|arg| arg.replace(&from, &format!(":{port}/")))
            .collect()
    }
}

/// Runs `argv` with exactly `env` (plus PATH), killed past `timeout` as Docker does: whether it
/// exited 0 in time, and what it printed.
fn run_check(argv: &[String], env: &BTreeMap<String, String>, timeout: Duration) -> (bool, String) {
    let mut child = clean_command(&argv[0])
        .args(&argv[1..])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {argv:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the check") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut printed = String::new();
    if status.is_some() {
        // After a kill a grandchild (curl under `sh -c`) may still hold the pipes: not read then.
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut printed);
        }
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut printed);
        }
    }
    match status {
        Some(status) => (status.success(), format!("{status}: {printed}")),
        None => (false, format!("killed after {timeout:?}: {printed}")),
    }
}

/// The runtime stage's ENV as the container gets it, except HOST: tests may only listen on
/// loopback, so the image's `HOST=0.0.0.0` (right for a container, whose port is published from
/// its own network namespace) becomes 127.0.0.1. PORT is replaced per start with a free port by
/// [`start_gateway`], since a fixed 8000 could be taken.
fn loopback_image_env(dockerfile: &Dockerfile) -> BTreeMap<String, String> {
    let mut env = dockerfile.runtime().env();
    env.insert("HOST".into(), "127.0.0.1".into());
    env
}

/// A gateway started the way the image starts it; killed on drop (its log shown on failure).
struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `docker stop`: SIGTERM, then (after Docker's default 10 s) SIGKILL. An idle gateway must
    /// exit 0 before the SIGKILL.
    fn docker_stop(&mut self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for apiproxy") {
                assert!(status.success(), "exit after SIGTERM: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "apiproxy still running 10 s after SIGTERM: docker stop would SIGKILL it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- apiproxy log ----\n{}\n----", self.log());
        }
    }
}

/// Runs the image's command (`argv`, its binary replaced by the one cargo built) with exactly
/// `env` (plus PATH) and PORT set to a free loopback port, in an empty working directory like the
/// image's WORKDIR (no .env there), until `ready(port)` passes (it gives whether, and what it
/// printed). If another process took the port first, starts again on a new one.
fn start_gateway(
    argv: &[String],
    env: &BTreeMap<String, String>,
    ready: impl Fn(u16) -> (bool, String),
) -> Running {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("gateway.log");
        let file = std::fs::File::create(&log).expect("create gateway log");
        let port = free_port();
        let child = clean_command(apiproxy_bin())
            .args(&argv[1..])
            .envs(env)
            .env("PORT", port.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn apiproxy");
        let mut running = Running {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = running.child.try_wait().expect("wait for apiproxy") {
                if running.log().contains("cannot listen on") {
                    break;
                }
                panic!("apiproxy exited during start-up with {status}");
            }
            let (passed, printed) = ready(port);
            if passed {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "the readiness check did not pass within 20 s; its last run: {printed}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("apiproxy found no free port in 5 tries");
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// A YAML block as docker-compose.yml writes it: `key: value` lines nested by indentation and
/// `- item` lines. Flow sequences (`[...]`) stay text.
#[derive(Default)]
struct Yaml {
    scalar: String,
    items: Vec<String>,
    map: Vec<(String, Yaml)>,
}

impl Yaml {
    fn parse(text: &str) -> Yaml {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| (l.len() - l.trim_start().len(), l.trim()))
            .collect();
        Yaml::block(&lines, &mut 0, 0)
    }

    fn block(lines: &[(usize, &str)], pos: &mut usize, indent: usize) -> Yaml {
        let mut node = Yaml::default();
        while let Some(&(at, text)) = lines.get(*pos) {
            if at < indent {
                break;
            }
            *pos += 1;
            if let Some(item) = text.strip_prefix("- ") {
                node.items.push(unquote(item));
                continue;
            }
            let (key, value) = text
                .split_once(':')
                .unwrap_or_else(|| panic!("docker-compose.yml: not `key: value`: {text}"));
            let mut child = match lines.get(*pos) {
                Some(&(next, _)) if next > at => Yaml::block(lines, pos, next),
                _ => Yaml::default(),
            };
            let value = value.trim();
            child.scalar = if value.starts_with('[') {
                value.to_string()
            } else {
                unquote(value)
            };
            node.map.push((key.trim().to_string(), child));
        }
        node
    }

    fn get(&self, key: &str) -> Option<&Yaml> {
        self.map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The node at a dotted path such as `services.redis.command`.
    fn at(&self, path: &str) -> &Yaml {
        path.split('.').fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("docker-compose.yml has no {path}"))
        })
    }

    /// `KEY: value` lines or `- KEY=value` items.
    fn string_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.scalar.clone()))
            .collect();
        for item in &self.items {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            map.insert(k.to_string(), v.to_string());
        }
        map
    }
}

fn compose() -> Yaml {
    Yaml::parse(&read_repo_file("docker-compose.yml"))
}

/// Compose's interpolation: `$$` (a literal `$`), `$VAR`, `${VAR}`, `${VAR:-default}`,
/// `${VAR-default}`, `${VAR:?error}` and `${VAR?error}`; an error when a required one is missing.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            let expression = &after[..end];
            rest = &after[end + 1..];
            let name_end = expression.find(|c| !is_name(c)).unwrap_or(expression.len());
            let (name, modifier) = expression.split_at(name_end);
            let set = vars.get(name).map(String::as_str);
            let non_empty = set.filter(|v| !v.is_empty());
            let value = if let Some(error) = modifier.strip_prefix(":?") {
                non_empty.ok_or_else(|| format!("{name}: {error}"))?
            } else if let Some(error) = modifier.strip_prefix('?') {
                set.ok_or_else(|| format!("{name}: {error}"))?
            } else if let Some(default) = modifier.strip_prefix(":-") {
                non_empty.unwrap_or(default)
            } else if let Some(default) = modifier.strip_prefix('-') {
                set.unwrap_or(default)
            } else if modifier.is_empty() {
                set.unwrap_or("")
            } else {
                return Err(format!("unsupported ${{{expression}}}"));
            };
            out.push_str(value);
        } else {
            let end = rest.find(|c| !is_name(c)).unwrap_or(rest.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(vars.get(&rest[..end]).map(String::as_str).unwrap_or(""));
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`interpolate`] on each element of a list (compose interpolates after parsing the YAML).
fn interpolate_all(
    list: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    list.iter().map(|item| interpolate(item, vars)).collect()
}

/// The variables a `.env` file sets: its uncommented `KEY=value` lines, quotes removed.
fn dotenv_vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.strip_prefix("export ").unwrap_or(l).split_once('=')?;
            Some((key.trim().to_string(), unquote(value)))
        })
        .collect()
}

/// The comment lines at the top of docker-compose.yml.
fn compose_header() -> String {
    read_repo_file("docker-compose.yml")
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#')))
        .collect()
}

/// A compose project directory prepared as the compose header says: `.env.example` copied to
/// `.env` with the documented `cp` command, and REDIS_PASSWORD set in `.env` (its commented line
/// uncommented) to the output of the documented generator.
struct Project {
    dir: tempfile::TempDir,
    /// What `.env` sets: compose's variables for `${...}`.
    vars: BTreeMap<String, String>,
    password: String,
}

const CP_COMMAND: &str = "cp .env.example .env";

impl Project {
    fn prepare() -> Project {
        let header = compose_header();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(repo_path(".env.example"), dir.path().join(".env.example"))
            .expect("copy .env.example");
        assert!(
            header.contains(CP_COMMAND),
            "the compose header says how to make .env: {header}"
        );
        let status = clean_command("sh")
            .args(["-c", CP_COMMAND])
            .current_dir(dir.path())
            .status()
            .expect("run cp");
        assert!(status.success(), "{CP_COMMAND}: {status}");

        // The generator the header suggests, e.g. `openssl rand -hex 32`, between backquotes on
        // the line that names REDIS_PASSWORD.
        let generator = header
            .lines()
            .find(|l| l.contains("REDIS_PASSWORD") && l.contains('`'))
            .and_then(|l| l.split('`').nth(1))
            .unwrap_or_else(|| {
                panic!("the compose header suggests a password generator: {header}")
            });
        let output = clean_command("sh")
            .args(["-c", generator])
            .output()
            .expect("run the password generator");
        assert!(output.status.success(), "{generator}: {output:?}");
        let password = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(
            password.len() >= 16
                && password
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)),
            "{generator} gives a URL-safe password: {password:?}"
        );

        let env_path = dir.path().join(".env");
        let env = std::fs::read_to_string(&env_path).expect("read .env");
        let mut found = false;
        let edited: String = env
            .lines()
            .map(|line| {
                let bare = line.trim_start_matches(['#', ' ']);
                if !found && bare.starts_with("REDIS_PASSWORD=") {
                    found = true;
                    format!("REDIS_PASSWORD={password}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert!(
            found,
            "docker-compose.yml requires REDIS_PASSWORD in .env, but .env.example has no \
             REDIS_PASSWORD line to fill in"
        );
        std::fs::write(&env_path, &edited).expect("write .env");
        Project {
            dir,
            vars: dotenv_vars(&edited),
            password,
        }
    }

    fn env_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `redis-cli -p port` authenticated with `password`: its trimmed output.
fn redis_cli(redis: &RedisServer, password: &str, args: &[&str]) -> String {
    let output = clean_command("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--no-auth-warning",
            "-a",
            password,
        ])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A compose healthcheck `test` as argv: `["CMD-SHELL", cmd]` or a plain string runs under
/// `/bin/sh -c`, `["CMD", ...]` as is.
fn compose_test_argv(test: &str) -> Vec<String> {
    if !test.starts_with('[') {
        return vec!["/bin/sh".into(), "-c".into(), test.into()];
    }
    let list = json_list(test, "healthcheck test");
    match list.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), list[1..].join(" ")],
        Some("CMD") => list[1..].to_vec(),
        _ => panic!("a healthcheck test starts with CMD or CMD-SHELL: {test}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: the Dockerfile

#[test]
fn dockerfile_is_a_two_stage_build_running_as_a_user_with_a_healthcheck() {
    let dockerfile = Dockerfile::load();
    assert_eq!(dockerfile.stages.len(), 2, "a builder and a runtime stage");
    let builder = dockerfile.builder();
    let builder_name = builder.name.as_deref().expect("the builder stage is named");
    let runtime = dockerfile.runtime();

    let user = runtime.last("USER").expect("the runtime stage sets a USER");
    let user_name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&user_name),
        "the runtime user is not root: {user}"
    );
    assert!(
        runtime
            .all("RUN")
            .any(|run| run.contains("useradd") && run.split_whitespace().last() == Some(user_name)),
        "the runtime stage creates its user {user_name}"
    );
    assert!(runtime.last("HEALTHCHECK").is_some(), "a HEALTHCHECK");

    let env = runtime.env();
    assert_eq!(
        env.get("HOST").map(String::as_str),
        Some("0.0.0.0"),
        "the container listens on every interface, so its published port reaches it"
    );
    let port = env.get("PORT").expect("ENV PORT");
    assert_eq!(
        runtime.last("EXPOSE"),
        Some(port.as_str()),
        "EXPOSE is PORT"
    );
    let healthcheck = dockerfile.healthcheck();
    assert!(
        healthcheck
            .argv
            .join(" ")
            .contains(&format!("127.0.0.1:{port}/health")),
        "the HEALTHCHECK asks the gateway's /health on PORT {port}: {:?}",
        healthcheck.argv
    );

    // The builder's release build of the `apiproxy` bin, with the lock file as committed.
    let build = builder
        .all("RUN")
        .find(|run| run.contains("cargo build"))
        .expect("the builder runs cargo build");
    let tokens: Vec<&str> = build.split_whitespace().collect();
    assert!(
        tokens.contains(&"--locked"),
        "cargo build --locked: {build}"
    );
    assert!(
        tokens.contains(&"--release"),
        "cargo build --release: {build}"
    );
    let bin = tokens
        .windows(2)
        .find(|w| w[0] == "--bin")
        .map(|w| w[1])
        .or_else(|| tokens.iter().find_map(|t| t.strip_prefix("--bin=")));
    assert_eq!(bin, Some("apiproxy"), "cargo build --bin apiproxy: {build}");

    // The runtime stage runs what the builder built.
    let workdir = builder.last("WORKDIR").expect("the builder's WORKDIR");
    let copied = runtime
        .all("COPY")
        .find(|copy| copy.contains(&format!("--from={builder_name}")))
        .expect("the runtime stage copies from the builder");
    let copied: Vec<&str> = copied
        .split_whitespace()
        .filter(|t| !t.starts_with("--"))
        .collect();
    assert_eq!(
        copied.first().copied(),
        Some(format!("{workdir}/target/release/apiproxy").as_str()),
        "the binary cargo build --release wrote"
    );
    let command = dockerfile.command();
    assert_eq!(
        Some(&command[0].as_str()),
        copied.last(),
        "the ENTRYPOINT runs the copied binary"
    );
    assert_eq!(command[1..], ["serve"], "the image serves");
}

/// `COPY <sources> <dest>` lines of the builder stage that copy from the build context, each with
/// the repository path of every source and the path it gets relative to the build WORKDIR.
fn builder_context_copies(dockerfile: &Dockerfile) -> Vec<(String, String)> {
    let mut workdir = String::from("/");
    let mut copies = Vec::new();
    for instruction in &dockerfile.builder().instructions {
        match instruction.keyword.as_str() {
            "WORKDIR" => workdir = instruction.args.trim_end_matches('/').to_string(),
            "COPY" | "ADD" => {
                let args = &instruction.args;
                assert!(!args.starts_with('['), "COPY in the plain form: {args}");
                if args.contains("--from=") {
                    continue;
                }
                let tokens: Vec<&str> = args
                    .split_whitespace()
                    .filter(|t| !t.starts_with("--"))
                    .collect();
                let (dest, sources) = tokens.split_last().expect("COPY <src>... <dest>");
                let into_dir = dest.ends_with('/') || sources.len() > 1;
                let dest = dest.strip_prefix(&format!("{workdir}/")).unwrap_or(dest);
                let dest = dest.trim_start_matches("./").trim_end_matches('/');
                let dest = if dest == "." { "" } else { dest };
                for source in sources {
                    let source = source.trim_start_matches("./").trim_end_matches('/');
                    // A directory's contents go into dest; a file into dest/ or to dest.
                    let target = if repo_path(source).is_dir() || !(into_dir || dest.is_empty()) {
                        dest.to_string()
                    } else {
                        let name = Path::new(source).file_name().expect("a file name");
                        Path::new(dest).join(name).display().to_string()
                    };
                    copies.push((source.to_string(), target));
                }
            }
            _ => {}
        }
    }
    copies
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// What cargo's `--locked` build checks before compiling — the manifest loads with exactly the
/// files the builder copies (every declared target present) and Cargo.lock satisfies it — on a
/// copy of that build context. `cargo fetch` parses the targets as `cargo build` does;
/// `--offline` and the host target keep it to the crates the test build already fetched.
#[test]
fn the_builder_stage_copies_a_complete_build_context() {
    let dockerfile = Dockerfile::load();
    let copies = builder_context_copies(&dockerfile);
    assert!(!copies.is_empty(), "the builder copies the sources");
    let ignored: Vec<String> = read_repo_file(".dockerignore")
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let context = tempfile::tempdir().expect("tempdir");
    for (source, target) in &copies {
        assert!(
            repo_path(source).exists(),
            "COPY {source}: no such file in the repository"
        );
        assert!(
            !ignored
                .iter()
                .any(|i| source == i || source.starts_with(&format!("{i}/"))),
            "COPY {source}, but .dockerignore leaves it out of the build context"
        );
        assert_eq!(
            source, target,
            "copied to the same place as in the repository"
        );
        copy_tree(&repo_path(source), &context.path().join(target));
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let version = Command::new(&cargo).arg("-vV").output().expect("cargo -vV");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host");
    let output = Command::new(&cargo)
        .args(["fetch", "--locked", "--offline", "--target", host])
        .current_dir(context.path())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo fetch");
    assert!(
        output.status.success(),
        "cargo on the builder's build context: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_image_env_and_command_serve_and_pass_the_healthcheck_until_stopped() {
    let dockerfile = Dockerfile::load();
    let env = loopback_image_env(&dockerfile);
    let image_port = dockerfile.runtime().env()["PORT"].clone();
    let healthcheck = dockerfile.healthcheck();

    // The image's own readiness signal: its HEALTHCHECK (within its --timeout).
    let mut gateway = start_gateway(&dockerfile.command(), &env, |port| {
        run_check(
            &healthcheck.on_port(&image_port, port),
            &env,
            healthcheck.timeout,
        )
    });
    let check = healthcheck.on_port(&image_port, gateway.port);
    let (healthy, printed) = run_check(&check, &env, healthcheck.timeout);
    assert!(
        healthy,
        "the HEALTHCHECK passes on a running gateway: {printed}"
    );
    assert!(
        gateway
            .log()
            .contains(&format!("127.0.0.1:{}", gateway.port)),
        "HOST and PORT come from the environment"
    );

    gateway.docker_stop();
    let (healthy, printed) = run_check(&check, &env, healthcheck.timeout);
    assert!(
        !healthy,
        "the HEALTHCHECK fails once the gateway is stopped: {printed}"
    );
}

/// With the image's exact ENV (HOST 0.0.0.0 included: nothing is bound here) and a token of the
/// operator's own, the gateway's configuration is valid and listens where the image says; without
/// the token it refuses, naming the variable (the image listens beyond loopback).
#[test]
fn the_image_env_is_a_valid_configuration() {
    let dockerfile = Dockerfile::load();
    let env = dockerfile.runtime().env();
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = clean_command(apiproxy_bin())
        .arg("check-config")
        .envs(&env)
        .current_dir(dir.path())
        .output()
        .expect("run check-config");
    assert!(!refused.status.success());
    assert!(output_text(&refused).contains("APIPROXY_AUTH_TOKEN"));
    let output = clean_command(apiproxy_bin())
        .arg("check-config")
        .envs(&env)
        .env("APIPROXY_AUTH_TOKEN", "an-operators-own-secret")
        .current_dir(dir.path())
        .output()
        .expect("run check-config");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("listen: {}:{}", env["HOST"], env["PORT"])),
        "{text}"
    );
}

/// mimalloc ignores environment variables it does not know. With MIMALLOC_VERBOSE=1 it prints
/// every option it has with the value in effect (`option 'purge_delay': 0`), so each MIMALLOC_*
/// of the image must name one of them and set it (their defaults differ from the image's values).
#[test]
fn mimalloc_reads_the_image_settings() {
    let dockerfile = Dockerfile::load();
    let env = dockerfile.runtime().env();
    let output = clean_command(apiproxy_bin())
        .arg("--version")
        .envs(&env)
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .expect("run apiproxy --version");
    let printed = output_text(&output);
    assert!(output.status.success(), "{printed}");
    let settings: Vec<(&String, &String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("MIMALLOC_"))
        .collect();
    assert!(!settings.is_empty(), "the image tunes mimalloc");
    for (key, value) in settings {
        let option = format!(
            "option '{}':",
            key["MIMALLOC_".len()..].to_ascii_lowercase()
        );
        let in_effect = printed
            .lines()
            .find_map(|line| line.trim().strip_prefix(&option))
            .unwrap_or_else(|| panic!("{key} is not a mimalloc option: {printed}"));
        assert_eq!(in_effect.trim(), value, "mimalloc took {key}={value}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: docker-compose.yml

#[test]
fn compose_file_wires_the_api_to_a_private_password_protected_redis() {
    let compose = compose();
    let redis = compose.at("services.redis");
    let api = compose.at("services.api");
    assert_eq!(
        api.at("build").scalar.trim_end_matches('/'),
        ".",
        "the api is the Dockerfile next to the compose file"
    );
    assert_eq!(api.at("env_file").scalar, ".env");
    assert!(
        read_repo_file(".dockerignore")
            .lines()
            .any(|l| l.trim() == ".env"),
        ".env (secrets) stays out of the build context"
    );
    let env_example = read_repo_file(".env.example");
    assert!(
        env_example.contains("REDIS_PASSWORD") && env_example.contains(CP_COMMAND),
        ".env.example offers REDIS_PASSWORD, which docker-compose.yml requires"
    );
    assert_eq!(
        api.at("depends_on.redis.condition").scalar,
        "service_healthy"
    );
    assert!(
        redis
            .get("healthcheck")
            .is_some_and(|h| h.get("test").is_some())
    );
    assert!(
        redis.get("ports").is_none(),
        "Redis is not published on the host"
    );
    let image_port = Dockerfile::load().runtime().env()["PORT"].clone();
    let ports = &api.at("ports").items;
    assert!(!ports.is_empty(), "the api publishes its port");
    for mapping in ports {
        assert_eq!(
            mapping.rsplit(':').next(),
            Some(image_port.as_str()),
            "the published container port is the image's PORT: {mapping}"
        );
    }
    let url = &api.at("environment").string_map()["REDIS_URL"];
    assert!(
        url.contains("@redis:6379/"),
        "REDIS_URL names the redis service at Redis' default port: {url}"
    );

    // Without REDIS_PASSWORD compose refuses to start redis rather than run it without one.
    let command = json_list(&redis.at("command").scalar, "redis command");
    assert!(
        interpolate_all(&command, &BTreeMap::new()).is_err(),
        "REDIS_PASSWORD is required: {command:?}"
    );
}

#[tokio::test]
async fn compose_redis_and_api_services_run_with_a_password_and_the_env_example() {
    let compose = compose();
    let project = Project::prepare();
    let vars = &project.vars;
    let redis_service = compose.at("services.redis");
    let api_service = compose.at("services.api");

    // The redis service's command, plus a free loopback port and no persistence (RedisServer).
    let command = json_list(&redis_service.at("command").scalar, "redis command");
    let command = interpolate_all(&command, vars).expect("interpolate");
    assert_eq!(command[0], "redis-server");
    assert!(command.contains(&project.password), "{command:?}");
    let redis = RedisServer::start_with_args(&command[1..]);
    assert!(
        redis.cli(&["PING"]).contains("NOAUTH"),
        "the password is required"
    );

    // The redis healthcheck as compose runs it: `$$` is compose's escape for `$`, so the shell in
    // the container expands $REDIS_PASSWORD from the service's `environment`. In the container
    // redis-cli reaches redis-server on its default port; here `-p <port>` points it at ours.
    let test = compose_test_argv(&redis_service.at("healthcheck.test").scalar);
    let check: Vec<String> = interpolate_all(&test, vars)
        .expect("interpolate")
        .iter()
        .map(|arg| arg.replace("redis-cli", &format!("redis-cli -p {}", redis.port)))
        .collect();
    let mut redis_env: BTreeMap<String, String> = redis_service
        .at("environment")
        .string_map()
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, vars).expect("interpolate")))
        .collect();
    let timeout = Duration::from_secs(10);
    let (healthy, printed) = run_check(&check, &redis_env, timeout);
    assert!(
        healthy,
        "the redis healthcheck passes: {check:?}: {printed}"
    );
    redis_env.insert("REDIS_PASSWORD".into(), "wrong-password".into());
    let (healthy, _) = run_check(&check, &redis_env, timeout);
    assert!(
        !healthy,
        "the redis healthcheck fails with a wrong password"
    );

    // The api service: the image's ENV and CMD, its env_file (the .env made from .env.example,
    // given with --env-file; compose would put its variables into the environment instead, which
    // only differs for HOST and PORT, left unset by .env.example) and its `environment`, whose
    // REDIS_URL points at the test redis instead of the compose host `redis`.
    let dockerfile = Dockerfile::load();
    let image_port = dockerfile.runtime().env()["PORT"].clone();
    let healthcheck = dockerfile.healthcheck();
    let env_file = project.env_file(&api_service.at("env_file").scalar);
    let mut argv = dockerfile.command();
    argv.extend(["--env-file".to_string(), env_file.display().to_string()]);
    let api_env = |vars: &BTreeMap<String, String>| {
        let mut env = loopback_image_env(&dockerfile);
        for (key, value) in api_service.at("environment").string_map() {
            let value = interpolate(&value, vars).expect("interpolate");
            let value = value.replace("@redis:6379/", &format!("@127.0.0.1:{}/", redis.port));
            env.insert(key, value);
        }
        env
    };
    let env = api_env(vars);
    let gateway = start_gateway(&argv, &env, |port| {
        run_check(
            &healthcheck.on_port(&image_port, port),
            &env,
            healthcheck.timeout,
        )
    });

    let health = client()
        .get(gateway.url("/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);
    let health: Value = serde_json::from_str(&health.text().await.expect("body")).expect("JSON");
    assert_eq!(health["status"], "ok", "the store is reachable: {health}");

    // The aggregated model list is cached in Redis (`gateway:models:all`) on the first /v1/models.
    let token = vars
        .get("APIPROXY_AUTH_TOKEN")
        .map_or("timeline", String::as_str);
    let auth = format!(
        "Bearer {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    );
    let models = client()
        .get(gateway.url("/v1/models"))
        .header("authorization", auth)
        .send()
        .await
        .expect("GET /v1/models");
    assert_eq!(models.status(), 200);
    let keys = eventually(Duration::from_secs(3), "a key in Redis", || async {
        let size: u64 = redis_cli(&redis, &project.password, &["DBSIZE"])
            .parse()
            .ok()?;
        (size > 0).then(|| redis_cli(&redis, &project.password, &["KEYS", "*"]))
    })
    .await;
    assert!(keys.contains("gateway:models:all"), "{keys}");
    drop(gateway);

    // The password in REDIS_URL is what lets the gateway in: with another one the store is
    // unreachable (the gateway still serves, degraded).
    let mut wrong = vars.clone();
    wrong.insert("REDIS_PASSWORD".into(), "wrong-password".into());
    let env = api_env(&wrong);
    let gateway = start_gateway(&argv, &env, |port| {
        run_check(
            &healthcheck.on_port(&image_port, port),
            &env,
            healthcheck.timeout,
        )
    });
    let health = client()
        .get(gateway.url("/health"))
        .send()
        .await
        .expect("GET /health");
    let health: Value = serde_json::from_str(&health.text().await.expect("body")).expect("JSON");
    assert_eq!(health["status"], "degraded", "{health}");
}
