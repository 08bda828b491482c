//! Where the Redis stores connect: one server, a Redis Cluster, or the master a Sentinel set
//! names. Parsed from `REDIS_URL` (or `REDIS_CLUSTER_NODES`) at start-up, so a wrong form stops
//! the gateway with the variable's name instead of failing on the first store call.
//!
//! Forms:
//! - `redis://[[user]:password@]host:port[/db]`, `rediss://...` (TLS): one server.
//! - `redis+cluster://[[user]:password@]host:port,host:port,...[/]`: a Redis Cluster, given by
//!   seed nodes (any reachable one is enough to learn the rest). A cluster has database 0 only.
//! - `REDIS_CLUSTER_NODES=host:port,host:port`: the same, without a password.
//! - `redis+sentinel://[[user]:password@]host:port,host:port/<master name>[/db]`: the master that
//!   the Sentinels at those addresses monitor under that name, followed through fail-overs. The
//!   password is the Redis servers' (master and replicas); the Sentinels are asked without one.
//!
//! A password may be percent-encoded (`%40` for `@`). A port left out is 6379 (26379 for a
//! Sentinel).

use secrecy::{ExposeSecret, SecretString};

/// The Redis deployment the stores talk to.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server: the URL is passed to the client as it is (it may hold a password).
    Single { url: SecretString },
    /// A Redis Cluster, by its seed nodes.
    Cluster {
        nodes: Vec<(String, u16)>,
        username: Option<String>,
        password: Option<SecretString>,
    },
    /// The master a set of Sentinels monitors under `master`.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        db: i64,
        username: Option<String>,
        password: Option<SecretString>,
    },
}

/// Why a value is not a Redis target, and the form expected instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub problem: String,
    pub expected: &'static str,
}

pub const URL_FORMS: &str = "redis://[:password@]host:port/db, rediss://..., \
     redis+cluster://[:password@]host:port,host:port,... or \
     redis+sentinel://[:password@]host:port,host:port/<master name>[/db]";
pub const NODES_FORM: &str = "comma-separated host:port seeds of a Redis Cluster, e.g. \
     10.0.0.1:7000,10.0.0.2:7000";

fn error(problem: impl Into<String>, expected: &'static str) -> TargetError {
    TargetError {
        problem: problem.into(),
        expected,
    }
}

impl RedisTarget {
    /// Parses `REDIS_URL`. Errors never repeat the value (it may hold a password).
    pub fn from_url(url: &str) -> Result<RedisTarget, TargetError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(error("not a Redis URL", URL_FORMS));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" => Ok(RedisTarget::Single {
                url: SecretString::from(url.to_string()),
            }),
            "redis+cluster" => {
                let (username, password, rest) = credentials(rest)?;
                let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
                if !matches!(path, "" | "0") {
                    return Err(error(
                        "a Redis Cluster has database 0 only; nothing may follow the node list",
                        URL_FORMS,
                    ));
                }
                Ok(RedisTarget::Cluster {
                    nodes: host_list(hosts, 6379, URL_FORMS)?,
                    username,
                    password,
                })
            }
            "redis+sentinel" => {
                let (username, password, rest) = credentials(rest)?;
                let mut parts = rest.split('/');
                let hosts = parts.next().unwrap_or("");
                let master = parts.next().unwrap_or("").trim();
                if master.is_empty() {
                    return Err(error(
                        "the Sentinel form needs the master's name after the addresses",
                        URL_FORMS,
                    ));
                }
                let db = match parts.next() {
                    None | Some("") => 0,
                    Some(db) => db.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                        error(
                            "the database after the master's name is not a number",
                            URL_FORMS,
                        )
                    })?,
                };
                if parts.next().is_some() {
                    return Err(error(
                        "too many '/' parts after the Sentinel addresses",
                        URL_FORMS,
                    ));
                }
                Ok(RedisTarget::Sentinel {
                    sentinels: host_list(hosts, 26379, URL_FORMS)?,
                    master: percent_decode(master)?,
                    db,
                    username,
                    password,
                })
            }
            "rediss+cluster" | "rediss+sentinel" => Err(error(
                "TLS is not supported for a Redis Cluster or Sentinel set yet",
                URL_FORMS,
            )),
            _ => Err(error("not a Redis URL", URL_FORMS)),
        }
    }

    /// Parses `REDIS_CLUSTER_NODES`.
    pub fn from_cluster_nodes(nodes: &str) -> Result<RedisTarget, TargetError> {
        Ok(RedisTarget::Cluster {
            nodes: host_list(nodes.trim(), 6379, NODES_FORM)?,
            username: None,
            password: None,
        })
    }

    /// A short description for logs and `check-config` (no password).
    pub fn describe(&self) -> String {
        match self {
            RedisTarget::Single { .. } => "redis (one server)".to_string(),
            RedisTarget::Cluster { nodes, .. } => {
                format!("redis cluster ({} seed nodes)", nodes.len())
            }
            RedisTarget::Sentinel {
                sentinels, master, ..
            } => format!(
                "redis sentinel (master '{master}', {} sentinels)",
                sentinels.len()
            ),
        }
    }

    pub(crate) fn password(&self) -> Option<String> {
        match self {
            RedisTarget::Single { .. } => None,
            RedisTarget::Cluster { password, .. } | RedisTarget::Sentinel { password, .. } => {
                password.as_ref().map(|p| p.expose_secret().to_string())
            }
        }
    }
}

type Credentials<'a> = (Option<String>, Option<SecretString>, &'a str);

/// Splits `[user]:password@` off the front (at the last `@`, so an unencoded `@` in the password
/// still works).
fn credentials(rest: &str) -> Result<Credentials<'_>, TargetError> {
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return Ok((None, None, rest));
    };
    let userinfo = &rest[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let username = (!user.is_empty())
        .then(|| percent_decode(user))
        .transpose()?;
    let password = password
        .filter(|p| !p.is_empty())
        .map(percent_decode)
        .transpose()?
        .map(SecretString::from);
    Ok((username, password, &rest[at + 1..]))
}

/// `host:port,host:port`: trimmed, empty items dropped, at least one; `[v6]:port` allowed.
fn host_list(
    list: &str,
    default_port: u16,
    expected: &'static str,
) -> Result<Vec<(String, u16)>, TargetError> {
    let mut nodes = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (host, port) = if let Some(v6) = item.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(error(format!("'{item}' is not host:port"), expected));
            };
            (host, after.strip_prefix(':'))
        } else {
            match item.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (item, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(error(format!("'{item}' is not host:port"), expected));
        }
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                error(format!("'{item}' does not end in a port 1-65535"), expected)
            })?,
        };
        nodes.push((host.to_string(), port));
    }
    if nodes.is_empty() {
        return Err(error("no host:port given", expected));
    }
    Ok(nodes)
}

fn percent_decode(text: &str) -> Result<String, TargetError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| error("a '%' not followed by two hex digits", URL_FORMS))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| error("percent-encoding that is not UTF-8", URL_FORMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn single_urls_pass_through() {
        for url in ["redis://127.0.0.1:6379/0", "rediss://:pw@h:6380/2"] {
            let Ok(RedisTarget::Single { url: got }) = RedisTarget::from_url(url) else {
                panic!("{url}");
            };
            assert_eq!(got.expose_secret(), url);
        }
    }

    #[test]
    fn cluster_urls_name_seed_nodes_and_a_password() {
        let Ok(RedisTarget::Cluster {
            nodes: got,
            username,
            password,
        }) = RedisTarget::from_url("redis+cluster://:p%40ss@h1:7000, h2:7001,[::1]:7002,h3/")
        else {
            panic!("not a cluster");
        };
        assert_eq!(
            got,
            nodes(&[("h1", 7000), ("h2", 7001), ("::1", 7002), ("h3", 6379)])
        );
        assert_eq!(username, None);
        assert_eq!(
            password.map(|p| p.expose_secret().to_string()).as_deref(),
            Some("p@ss")
        );
        let Ok(RedisTarget::Cluster { username, .. }) =
            RedisTarget::from_url("redis+cluster://app:pw@h1:7000")
        else {
            panic!("not a cluster");
        };
        assert_eq!(username.as_deref(), Some("app"));
    }

    #[test]
    fn sentinel_urls_name_the_master_and_a_database() {
        let Ok(RedisTarget::Sentinel {
            sentinels,
            master,
            db,
            password,
            ..
        }) = RedisTarget::from_url("redis+sentinel://:pw@s1:26379,s2/mymaster/3")
        else {
            panic!("not a sentinel set");
        };
        assert_eq!(sentinels, nodes(&[("s1", 26379), ("s2", 26379)]));
        assert_eq!(master, "mymaster");
        assert_eq!(db, 3);
        assert!(password.is_some());
        let Ok(RedisTarget::Sentinel { db, password, .. }) =
            RedisTarget::from_url("redis+sentinel://s1:26379/m")
        else {
            panic!("not a sentinel set");
        };
        assert_eq!((db, password.is_none()), (0, true));
    }

    #[test]
    fn cluster_nodes_variable_lists_seeds() {
        let Ok(RedisTarget::Cluster { nodes: got, .. }) =
            RedisTarget::from_cluster_nodes("10.0.0.1:7000,10.0.0.2:7000,")
        else {
            panic!("not a cluster");
        };
        assert_eq!(got, nodes(&[("10.0.0.1", 7000), ("10.0.0.2", 7000)]));
    }

    #[test]
    fn invalid_forms_are_refused_without_repeating_the_password() {
        for bad in [
            "http://x",
            "localhost:6379",
            "redis+cluster://",
            "redis+cluster://:secret@",
            "redis+cluster://h1:notaport",
            "redis+cluster://h1:0",
            "redis+cluster://h1:7000/2",
            "redis+sentinel://:secret@s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel://s1:26379/m/1/2",
            "redis+sentinel://:bad%zz@s1/m",
            "rediss+cluster://h1:7000",
        ] {
            let e = RedisTarget::from_url(bad).expect_err(bad);
            assert!(!e.problem.contains("secret"), "{bad}: {}", e.problem);
        }
        for bad in ["", " , ", "h1:70000", "h1:7000,/x"] {
            assert!(RedisTarget::from_cluster_nodes(bad).is_err(), "{bad}");
        }
    }
}
