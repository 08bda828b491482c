// The operators' console (/ui): hash-routed pages over the admin endpoints, no framework.
//
// Rules this file keeps:
// - Everything shown is built as DOM nodes with textContent (data is never parsed as HTML), so a
//   provider name, a key name or an upstream error message can never become markup.
// - The admin token lives in sessionStorage only (this tab; gone when it closes), is sent as an
//   Authorization header, and is never put in a URL.
// - Each page gets a context whose timers and fetches (AbortController) stop when the page is left.
'use strict';

(() => {
  const TOKEN_KEY = 'apiproxy.console.token';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#2457c5', '#d9480f', '#138a5a', '#8e44ad', '#c2185b', '#0e7c86', '#b08800', '#5c6bc0', '#6d4c41', '#546e7a'];
  const LIVE_KEEP = 500;
  const WINDOW_MS = 15 * 60 * 1000;

  // ------------------------------------------------------------------------------------------
  // DOM helpers

  function setProps(el, props) {
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else if (name === 'text') {
        el.textContent = String(value);
      } else if (name === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (name === 'value' && 'value' in el && !(el instanceof SVGElement)) {
        el.value = String(value);
      } else {
        el.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** An HTML element: `h('td', {class: 'num'}, text, node, ...)`. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    return append(el, children);
  }

  /** An SVG element, same calling convention. */
  function s(tag, props, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setProps(el, props);
    return append(el, children);
  }

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------
  // Formatting (tabular figures; null shows as a dash)

  const DASH = '\u2014';
  function num(v, digits = 1) {
    if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
    return v.toFixed(digits);
  }
  function int(v) {
    return v === null || v === undefined ? DASH : Math.round(v).toLocaleString('en-US');
  }
  function pct(v) {
    return v === null || v === undefined || !Number.isFinite(v) ? DASH : (v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1) + '%';
  }
  function ms(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
    if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
    return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ms';
  }
  function usd(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
    if (v === 0) return '$0';
    if (Math.abs(v) >= 100) return '$' + v.toFixed(0);
    if (Math.abs(v) >= 1) return '$' + v.toFixed(2);
    if (Math.abs(v) >= 0.01) return '$' + v.toFixed(3);
    return '$' + v.toPrecision(2);
  }
  function clock(msSinceEpoch) {
    const d = new Date(msSinceEpoch);
    const pad = (n, w = 2) => String(n).padStart(w, '0');
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }
  function when(iso) {
    if (!iso) return 'never';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }
  function day(offset) {
    const d = new Date(Date.now() - offset * 86400000);
    return d.toISOString().slice(0, 10);
  }

  // ------------------------------------------------------------------------------------------
  // Talking to the gateway

  class AuthError extends Error {}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  /** `error.message` (and `error.code`) of a gateway error body, or a fallback. */
  function errorText(status, data) {
    const error = data && typeof data === 'object' ? data.error : null;
    if (error && typeof error === 'object' && error.message) {
      return error.code ? `${error.message} (${error.code})` : String(error.message);
    }
    return typeof data === 'string' && data ? `HTTP ${status}: ${data.slice(0, 200)}` : `HTTP ${status}`;
  }

  async function readBody(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return text;
    }
  }

  /**
   * One admin call. 401/403 end the session (back to the login form with the reason); any other
   * answer is returned as `{status, ok, data}` for the page to show.
   */
  async function api(method, path, body, signal) {
    const headers = { Authorization: 'Bearer ' + token() };
    const init = { method, headers, cache: 'no-store', signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await readBody(response);
    if (response.status === 401 || response.status === 403) {
      const reason = errorText(response.status, data);
      logout(`The gateway refused the token (${response.status}): ${reason}`);
      throw new AuthError(reason);
    }
    return { status: response.status, ok: response.ok, data };
  }

  // ------------------------------------------------------------------------------------------
  // Pages' lifetime: timers and fetches of the page on screen stop when it is left

  let page = null;

  function newContext() {
    const controller = new AbortController();
    const timers = new Set();
    const ctx = {
      alive: true,
      signal: controller.signal,
      api: (method, path, body) => api(method, path, body, controller.signal),
      /** Runs `fn` now and then `ms` after each run ends (never two at once). */
      every(ms, fn) {
        const run = async () => {
          if (!ctx.alive) return;
          try {
            await fn();
          } catch (e) {
            ctx.fail(e);
          }
          if (ctx.alive) {
            const id = setTimeout(() => {
              timers.delete(id);
              run();
            }, ms);
            timers.add(id);
          }
        };
        run();
      },
      sleep(ms) {
        return new Promise((resolve) => {
          const id = setTimeout(() => {
            timers.delete(id);
            resolve();
          }, ms);
          timers.add(id);
        });
      },
      /** Shows an unexpected failure at the top of the page (auth and aborts are handled). */
      fail(e) {
        if (!ctx.alive || e instanceof AuthError || (e && e.name === 'AbortError')) return;
        const banner = $('page-error');
        if (banner) {
          banner.textContent = 'Could not load: ' + (e && e.message ? e.message : String(e));
          banner.hidden = false;
        }
      },
      clearFailure() {
        const banner = $('page-error');
        if (banner) banner.hidden = true;
      },
      stop() {
        ctx.alive = false;
        for (const id of timers) clearTimeout(id);
        timers.clear();
        controller.abort();
      },
    };
    return ctx;
  }

  function stopPage() {
    if (page) page.stop();
    page = null;
  }

  // ------------------------------------------------------------------------------------------
  // Login and logout

  function showLogin(message) {
    stopPage();
    $('main').replaceChildren(); // no data stays in the document
    $('app').hidden = true;
    $('login').hidden = false;
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('token').focus();
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(message);
  }

  /**
   * Checks a token against `GET /admin/stats` (an admin endpoint) before keeping it: a wrong one
   * leaves the form up with the gateway's reason.
   */
  async function login(candidate) {
    const button = $('login-button');
    button.disabled = true;
    try {
      let response;
      try {
        response = await fetch('/admin/stats', {
          headers: { Authorization: 'Bearer ' + candidate },
          cache: 'no-store',
        });
      } catch (e) {
        showLogin('Could not reach the gateway: ' + e.message);
        return;
      }
      const data = await readBody(response);
      if (!response.ok) {
        const why =
          response.status === 401 || response.status === 403
            ? `This token is not accepted (${response.status}): ${errorText(response.status, data)}`
            : `The gateway answered ${errorText(response.status, data)}`;
        showLogin(why);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, candidate);
      $('token').value = '';
      // replaceState: no hashchange event, so the page is routed once, here.
      if (!location.hash || location.hash === '#') history.replaceState(null, '', '#/overview');
      route();
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Routing

  const PAGES = {
    overview: overviewPage,
    providers: providersPage,
    models: modelsPage,
    live: livePage,
    keys: keysPage,
  };

  function route() {
    if (!token()) {
      showLogin();
      return;
    }
    stopPage();
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const name = Object.prototype.hasOwnProperty.call(PAGES, parts[0]) ? parts[0] : 'overview';
    const args = parts.slice(1).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (_) {
        return p;
      }
    });
    $('login').hidden = true;
    $('app').hidden = false;
    for (const link of document.querySelectorAll('.sidebar a[data-page]')) {
      link.classList.toggle('active', link.dataset.page === name);
    }
    document.body.dataset.page = name;
    const main = $('main');
    main.replaceChildren(h('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }));
    page = newContext();
    PAGES[name](page, main, args);
  }

  function head(title, subtitle, ...extra) {
    return h('div', { class: 'page-head' }, h('h1', { text: title }), subtitle ? h('span', { class: 'muted', text: subtitle }) : null, ...extra);
  }

  // ------------------------------------------------------------------------------------------
  // Charts (SVG, drawn from scratch)

  /** A round upper bound for an axis: 1, 2, 2.5, 5 times a power of ten. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  /**
   * A line chart of `series` ([{name, color, points: [[x, y|null]]}]) over x in [from, to].
   * A null y or a gap of more than three intervals breaks the line.
   */
  // Four horizontal grid lines with their values on the left, shared by the line and bar charts.
  function gridLines(svg, { top, y, left, right, format }) {
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.append(
        s('line', { class: 'grid-line', x1: left, x2: right, y1: y(v), y2: y(v) }),
        s('text', { x: left - 6, y: y(v) + 3.5, 'text-anchor': 'end' }, format(v)),
      );
    }
  }

  function lineChart({ series, from, to, format, floor = 0, interval = 2000 }) {
    const W = 560, H = 190, L = 52, R = 12, T = 10, B = 24;
    const values = series.flatMap((one) => one.points.map((p) => p[1])).filter((v) => v !== null && Number.isFinite(v));
    const top = niceMax(Math.max(floor, ...values));
    const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    gridLines(svg, { top, y, left: L, right: W - R, format });
    svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    for (let m = 15; m >= 0; m -= 5) {
      const t = to - m * 60000;
      svg.append(s('text', { x: x(t), y: H - 7, 'text-anchor': m === 0 ? 'end' : m === 15 ? 'start' : 'middle' }, m === 0 ? 'now' : `\u2212${m} min`));
    }
    let drawn = 0;
    for (const one of series) {
      let d = '';
      let last = null;
      for (const [t, v] of one.points) {
        if (t < from || v === null || !Number.isFinite(v)) {
          last = null;
          continue;
        }
        const gap = last !== null && t - last > 3 * interval;
        d += `${last === null || gap ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        last = t;
      }
      if (d) {
        drawn += 1;
        svg.append(s('path', { class: 'series', d, stroke: one.color, 'data-series': one.name }));
        // The latest point as a dot: visible even when it is the only one.
        const end = [...one.points].reverse().find(([t, v]) => t >= from && v !== null && Number.isFinite(v));
        if (end) svg.append(s('circle', { cx: x(end[0]), cy: y(end[1]), r: 2.6, fill: one.color }));
      }
    }
    if (!drawn) {
      svg.append(s('text', { class: 'empty', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' }, 'No samples in this window yet'));
    }
    svg.dataset.series = String(drawn);
    return svg;
  }

  function legend(items) {
    return h('div', { class: 'legend' }, items.map(([name, color]) => h('span', {}, h('i', { class: 'swatch', dataset: { color } }), name)));
  }

  // Swatches get their colour from script (CSSOM), as the CSP forbids inline style attributes.
  function paintSwatches(root) {
    for (const swatch of root.querySelectorAll('i.swatch[data-color]')) swatch.style.background = swatch.dataset.color;
  }

  /** A stacked bar per x label; `rows` = [{label, parts: Map(group -> value)}]. */
  function stackedBars({ rows, groups, colorOf, format }) {
    const W = 560, H = 210, L = 56, R = 10, T = 10, B = 26;
    const totals = rows.map((row) => [...row.parts.values()].reduce((a, b) => a + b, 0));
    const top = niceMax(Math.max(0, ...totals));
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const slot = (W - L - R) / Math.max(rows.length, 1);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    gridLines(svg, { top, y, left: L, right: W - R, format });
    rows.forEach((row, i) => {
      const x0 = L + i * slot + slot * 0.18;
      let base = 0;
      for (const group of groups) {
        const v = row.parts.get(group) || 0;
        if (v <= 0) continue;
        svg.append(
          s('rect', { x: x0, width: slot * 0.64, y: y(base + v), height: Math.max(0.5, y(base) - y(base + v)), fill: colorOf(group), 'data-group': group },
            s('title', {}, `${row.label} \u00b7 ${group}: ${format(v)}`)),
        );
        base += v;
      }
      svg.append(s('text', { x: x0 + slot * 0.32, y: H - 8, 'text-anchor': 'middle' }, row.label));
    });
    svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    if (!totals.some((t) => t > 0)) {
      svg.append(s('text', { class: 'empty', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' }, 'No spend in these days'));
    }
    return svg;
  }

  /** A bar (QPS against MAX_QPS, budget used); `share` in 0..1, or null for no limit. */
  function bar(share) {
    const fill = h('span');
    const clamped = share === null ? 0 : Math.max(0, Math.min(1, share));
    fill.style.width = (clamped * 100).toFixed(1) + '%';
    return h('div', { class: 'bar' + (share >= 1 ? ' bad' : share >= 0.8 ? ' warn' : ''), dataset: { share: share === null ? '' : share.toFixed(4) } }, fill);
  }

  // ------------------------------------------------------------------------------------------
  // Overview: /admin/stats every 2 s

  const OVERVIEW_CHARTS = [
    { id: 'rps', title: 'Requests per second', format: (v) => num(v, v < 10 ? 2 : 1), series: [['req/s', (x) => x.requests_per_second]] },
    { id: 'errors', title: 'Error rate (5xx and 429)', format: pct, floor: 0.05, series: [['error rate', (x) => x.error_rate]] },
    { id: 'overhead', title: 'Gateway overhead', format: ms, floor: 1, series: [['p50', (x) => x.overhead_ms && x.overhead_ms.p50], ['p99', (x) => x.overhead_ms && x.overhead_ms.p99]] },
    { id: 'upstream', title: 'Upstream latency', format: ms, floor: 10, series: [['p50', (x) => x.upstream_ms && x.upstream_ms.p50], ['p99', (x) => x.upstream_ms && x.upstream_ms.p99]] },
    { id: 'tokens', title: 'Tokens per minute', format: (v) => num(v, 0), series: [['tokens/min', (x) => x.tokens_per_minute]] },
    { id: 'cost', title: 'Cost per hour', format: usd, floor: 0.01, series: [['USD/h', (x) => x.cost_per_hour_usd]] },
  ];

  function overviewPage(ctx, main) {
    let samples = [];
    let since = 0;
    let interval = 2000;
    const updated = h('span', { class: 'muted', text: 'loading\u2026' });
    const tiles = h('div', { class: 'tiles' });
    const charts = h('div', { class: 'grid charts' });
    main.append(head('Overview', 'Last 15 minutes, updated every 2 s', updated), tiles, charts);

    function draw() {
      const to = samples.length ? samples[samples.length - 1].at : Date.now();
      const from = to - WINDOW_MS;
      const latest = samples[samples.length - 1] || null;
      tiles.replaceChildren(
        ...OVERVIEW_CHARTS.flatMap((c) =>
          c.series.map(([name, get]) =>
            h('div', { class: 'tile', dataset: { tile: `${c.id}-${name}` } },
              h('div', { class: 'label', text: c.series.length > 1 ? `${c.title} ${name}` : c.title }),
              h('div', { class: 'value', text: latest ? c.format(get(latest) ?? null) : DASH }))),
        ),
      );
      charts.replaceChildren(
        ...OVERVIEW_CHARTS.map((c) => {
          const series = c.series.map(([name, get], i) => ({
            name,
            color: COLORS[i],
            points: samples.map((x) => [x.at, get(x) ?? null]),
          }));
          const now = latest ? c.series.map(([name, get]) => `${c.series.length > 1 ? name + ' ' : ''}${c.format(get(latest) ?? null)}`).join(' \u00b7 ') : DASH;
          const figure = h('section', { class: 'panel chart', dataset: { chart: c.id } },
            h('div', { class: 'chart-head' }, h('h3', { text: c.title }), h('span', { class: 'chart-now', text: now })),
            lineChart({ series, from, to, format: c.format, floor: c.floor || 0, interval }),
            c.series.length > 1 ? legend(series.map((x) => [x.name, x.color])) : null);
          return figure;
        }),
      );
      paintSwatches(charts);
    }

    ctx.every(2000, async () => {
      const r = await ctx.api('GET', '/admin/stats' + (since ? `?since=${since}` : ''));
      if (!ctx.alive) return;
      if (!r.ok) throw new Error(errorText(r.status, r.data));
      ctx.clearFailure();
      const fresh = (r.data && Array.isArray(r.data.samples) ? r.data.samples : []).filter((x) => x && Number.isFinite(x.at) && x.at > since);
      if (r.data && r.data.interval_seconds > 0) interval = r.data.interval_seconds * 1000;
      samples = samples.concat(fresh);
      if (samples.length) {
        since = samples[samples.length - 1].at;
        samples = samples.filter((x) => x.at > since - WINDOW_MS).slice(-450);
      }
      updated.textContent = `${samples.length} samples \u00b7 ${new Date().toLocaleTimeString()}`;
      draw();
    });
  }

  // ------------------------------------------------------------------------------------------
  // Providers: /providers, their metrics, circuits (from /routing/decide) and health checks

  const CIRCUIT_RANK = { closed: 0, half_open: 1, open: 2 };

  function providersPage(ctx, main) {
    const cards = h('div', { class: 'grid cards' });
    const updated = h('span', { class: 'muted', text: 'loading\u2026' });
    main.append(head('Providers', 'Traffic figures over the last minute; refreshed every 5 s', updated), cards);
    const checks = new Map(); // provider id -> {pending, result, error}
    const models = new Map(); // provider id -> [model ids] | string (why not)
    let last = null;

    async function loadModels(p) {
      if (models.has(p.id)) return;
      if (Array.isArray(p.static_models)) {
        models.set(p.id, p.static_models);
        return;
      }
      models.set(p.id, 'loading\u2026');
      const r = await ctx.api('GET', `/providers/${encodeURIComponent(p.id)}/models`);
      models.set(p.id, r.ok && r.data && Array.isArray(r.data.models) ? r.data.models.map((m) => m.model_id) : errorText(r.status, r.data));
      if (last) render(last);
    }

    async function load() {
      const [providers, logical] = await Promise.all([ctx.api('GET', '/providers'), ctx.api('GET', '/logical-models')]);
      if (!providers.ok) throw new Error(errorText(providers.status, providers.data));
      const list = providers.data.providers || [];
      const metrics = await Promise.all(list.map((p) => ctx.api('GET', `/providers/${encodeURIComponent(p.id)}/metrics`)));
      // The circuit of each provider, as the router sees it: ask it to explain a decision (no
      // upstream is called, nothing is claimed) for each enabled logical model.
      const circuits = new Map();
      const enabled = logical.ok ? (logical.data.models || []).filter((m) => m.enabled) : [];
      const decisions = await Promise.all(enabled.map((m) => ctx.api('POST', '/routing/decide', { logical_model: m.logical_id })));
      for (const d of decisions) {
        if (!d.ok || !d.data || !Array.isArray(d.data.all_candidates)) continue;
        for (const c of d.data.all_candidates) {
          const id = c.upstream && c.upstream.provider_id;
          const seen = circuits.get(id);
          if (c.circuit && (!seen || CIRCUIT_RANK[c.circuit.state] > CIRCUIT_RANK[seen.state])) circuits.set(id, c.circuit);
        }
      }
      if (!ctx.alive) return;
      ctx.clearFailure();
      last = list.map((p, i) => ({ p, metrics: metrics[i].ok ? metrics[i].data.metrics || [] : null, circuit: circuits.get(p.id) || null }));
      render(last);
      updated.textContent = `${list.length} providers \u00b7 ${new Date().toLocaleTimeString()}`;
      list.forEach((p) => loadModels(p).catch(ctx.fail));
    }

    function circuitBadge(circuit) {
      if (!circuit) return h('span', { class: 'badge idle', text: 'circuit: not routed' });
      if (circuit.state === 'open') {
        return h('span', { class: 'badge bad countdown', dataset: { until: String(circuit.until * 1000) } }, 'circuit open');
      }
      if (circuit.state === 'half_open') return h('span', { class: 'badge warn', text: 'circuit half-open (probing)' });
      const failures = circuit.consecutive_failures || 0;
      return h('span', { class: 'badge ok', text: failures ? `circuit closed \u00b7 ${failures} failures in a row` : 'circuit closed' });
    }

    function render(rows) {
      cards.replaceChildren(
        ...rows.map(({ p, metrics, circuit }) => {
          const figures = metrics || [];
          const total = figures.reduce((a, m) => a + (m.total_requests_1m || 0), 0);
          const errors = figures.reduce((a, m) => a + (m.error_rate || 0) * (m.total_requests_1m || 0), 0);
          const p95 = figures.length ? Math.max(...figures.map((m) => m.latency_p95_ms || 0)) : null;
          const qps = total / 60;
          const worst = figures.map((m) => m.status).sort((a, b) => ['healthy', 'degraded', 'down'].indexOf(b) - ['healthy', 'degraded', 'down'].indexOf(a))[0];
          const health = !metrics ? ['idle', 'metrics unavailable'] : !worst ? ['idle', 'no traffic (1 min)'] : worst === 'healthy' ? ['ok', 'healthy'] : worst === 'degraded' ? ['warn', 'degraded'] : ['bad', 'down'];
          const check = checks.get(p.id) || {};
          const modelList = models.get(p.id);
          const button = h('button', {
            type: 'button', class: 'health-check', disabled: check.pending,
            onclick: () => runCheck(p.id),
          }, check.pending ? 'Checking\u2026' : 'Run health check');
          return h('section', { class: 'panel provider', dataset: { provider: p.id } },
            h('div', { class: 'card-head' },
              h('h2', { text: p.name || p.id }),
              h('span', { class: 'muted mono', text: p.id }),
              h('span', { class: 'badge ' + health[0], dataset: { health: health[1] }, text: health[1] }),
              circuitBadge(circuit),
              h('span', { class: 'spacer' })),
            h('div', { class: 'stats' },
              stat('Error rate', total ? pct(errors / total) : DASH),
              stat('p95 latency', p95 === null ? DASH : ms(p95)),
              h('div', { class: 'stat' },
                h('div', { class: 'label', text: 'QPS / MAX_QPS' }),
                h('div', { class: 'value', text: `${num(qps, 2)} / ${p.max_qps ?? '\u221e'}` }),
                bar(p.max_qps ? qps / p.max_qps : null)),
              stat('Requests (1 min)', int(total))),
            h('dl', { class: 'kv' },
              h('dt', { text: 'Vendor' }), h('dd', { text: p.vendor }),
              h('dt', { text: 'Base URL' }), h('dd', { class: 'mono', text: p.base_url }),
              h('dt', { text: 'Region' }), h('dd', { text: p.region || DASH }),
              h('dt', { text: 'Weight' }), h('dd', { class: 'num-left', text: String(p.weight) }),
              h('dt', { text: 'Models' }),
              h('dd', {}, Array.isArray(modelList)
                ? h('div', { class: 'chips' }, modelList.length ? modelList.map((m) => h('span', { class: 'chip mono', text: m })) : h('span', { class: 'muted', text: 'none listed' }))
                : h('span', { class: 'muted', text: modelList || DASH }))),
            h('div', { class: 'buttons' }, button),
            healthResult(check));
        }),
      );
      tick();
    }

    function stat(label, value) {
      return h('div', { class: 'stat' }, h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }));
    }

    function healthResult(check) {
      if (check.error) return h('div', { class: 'health-result error', text: check.error });
      if (!check.result) return null;
      const r = check.result;
      const cls = r.status === 'healthy' ? 'notice' : 'error';
      return h('div', { class: `health-result ${cls}`, dataset: { status: r.status } },
        `Health check: ${r.status}`,
        r.response_time_ms !== null && r.response_time_ms !== undefined ? ` in ${ms(r.response_time_ms)}` : '',
        r.error_message ? ` \u2014 ${r.error_message}` : '',
        ` (${new Date(r.timestamp * 1000).toLocaleTimeString()})`);
    }

    async function runCheck(id) {
      checks.set(id, { pending: true });
      if (last) render(last);
      try {
        const r = await ctx.api('GET', `/providers/${encodeURIComponent(id)}/health`);
        checks.set(id, r.ok ? { result: r.data } : { error: errorText(r.status, r.data) });
      } catch (e) {
        if (e instanceof AuthError || !ctx.alive) return;
        checks.set(id, { error: e.message });
      }
      if (last) render(last);
    }

    /** The open circuits' cool-down, counted down every second between refreshes. */
    function tick() {
      for (const badge of cards.querySelectorAll('.countdown')) {
        const left = Math.max(0, (Number(badge.dataset.until) - Date.now()) / 1000);
        badge.textContent = left > 0 ? `circuit open \u00b7 cool-down ${left.toFixed(0)} s` : 'circuit open \u00b7 cool-down over';
      }
    }

    ctx.every(5000, load);
    ctx.every(1000, async () => tick());
  }

  // ------------------------------------------------------------------------------------------
  // Logical models: list, create, edit, explain routing

  function modelsPage(ctx, main, args) {
    if (args[0]) return modelEditor(ctx, main, args[0]);
    const body = h('div');
    main.append(head('Logical models', 'The names clients ask for, and the upstreams behind them'), body);
    (async () => {
      const [models, providers] = await Promise.all([ctx.api('GET', '/logical-models'), ctx.api('GET', '/providers')]);
      if (!ctx.alive) return;
      if (!models.ok) throw new Error(errorText(models.status, models.data));
      const list = models.data.models || [];
      const providerIds = providers.ok ? (providers.data.providers || []).map((p) => p.id) : [];
      body.append(
        h('div', { class: 'table-wrap' },
          h('table', { class: 'models-table' },
            h('thead', {}, h('tr', {}, ['Logical model', 'Status', 'Upstreams (provider / model \u00d7 weight)', 'Updated'].map((t) => h('th', { text: t })))),
            h('tbody', {}, list.length ? list.map((m) =>
              h('tr', { dataset: { model: m.logical_id } },
                h('td', {}, h('a', { href: '#/models/' + encodeURIComponent(m.logical_id), text: m.logical_id }),
                  m.display_name && m.display_name !== m.logical_id ? h('div', { class: 'muted', text: m.display_name }) : null),
                h('td', {}, h('span', { class: 'badge ' + (m.enabled ? 'ok' : 'idle'), text: m.enabled ? 'enabled' : 'disabled' })),
                h('td', {}, h('div', { class: 'chips' }, (m.upstreams || []).map((u) => h('span', { class: 'chip mono', text: `${u.provider_id} / ${u.model_id} \u00d7 ${u.base_weight}` })))),
                h('td', { class: 'num', text: m.updated_at ? new Date(m.updated_at * 1000).toLocaleString() : DASH })))
              : h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'No logical models yet.' }))))),
        createModelForm(ctx, list, providerIds));
    })().catch(ctx.fail);
  }

  function createModelForm(ctx, existing, providerIds) {
    const id = h('input', { name: 'logical_id', required: true, placeholder: 'e.g. gpt-4o', dataset: { param: 'logical_id' } });
    const provider = providerSelect(providerIds, providerIds[0] || '', 'upstreams[0].provider_id');
    const model = h('input', { name: 'model_id', placeholder: 'the provider\u2019s model id', dataset: { param: 'upstreams[0].model_id' } });
    const weight = h('input', { name: 'base_weight', value: '1', inputmode: 'decimal', class: 'weight', dataset: { param: 'upstreams[0].base_weight' } });
    const errors = h('div');
    const form = h('form', { class: 'panel form', id: 'create-model' },
      h('h2', { text: 'New logical model' }),
      h('div', { class: 'form-row' }, field('Name', id, true), field('Provider', provider), field('Model id', model, true), field('Weight', weight)),
      errors,
      h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create' })));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const name = id.value.trim();
      if (existing.some((m) => m.logical_id === name)) {
        showErrors(form, errors, { message: `'${name}' exists already: open it from the list to edit it`, param: 'logical_id' });
        return;
      }
      const payload = { upstreams: [{ provider_id: provider.value, model_id: model.value, base_weight: weightValue(weight.value) }] };
      const r = await ctx.api('PUT', '/logical-models/' + encodeURIComponent(name), payload).catch(ctx.fail);
      if (!r) return;
      if (!r.ok) {
        showErrors(form, errors, apiError(r));
        return;
      }
      location.hash = '#/models/' + encodeURIComponent(name);
    });
    return form;
  }

  function field(label, input, grow) {
    return h('label', { class: 'field' + (grow ? ' grow' : '') }, label, input, h('span', { class: 'field-error', hidden: true }));
  }

  function providerSelect(ids, current, param) {
    const options = ids.includes(current) || !current ? ids : [current, ...ids];
    return h('select', { name: 'provider_id', dataset: { param } }, options.map((id) => h('option', { value: id, selected: id === current, text: id })));
  }

  /** A weight as typed: a number when it reads as one, else the text (the API says what is wrong). */
  function weightValue(text) {
    const trimmed = String(text).trim();
    const n = Number(trimmed);
    return trimmed !== '' && Number.isFinite(n) ? n : trimmed;
  }

  /** `{message, param}` of an API error answer. */
  function apiError(r) {
    const e = r.data && r.data.error ? r.data.error : {};
    return { message: errorText(r.status, r.data), param: e.param || null, status: r.status };
  }

  /** The API's validation error inline: at the top of the form and next to the field it names. */
  function showErrors(form, box, error) {
    for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
    for (const el of form.querySelectorAll('.field-error')) {
      el.textContent = '';
      el.hidden = true;
    }
    if (!error) {
      box.replaceChildren();
      return;
    }
    box.replaceChildren(h('div', { class: 'error form-error', role: 'alert', dataset: { param: error.param || '' } },
      error.message, error.param ? h('span', { class: 'muted' }, ' \u2014 field ', h('code', { text: error.param })) : null));
    if (!error.param) return;
    const target = [...form.querySelectorAll('[data-param]')].find((el) => el.dataset.param === error.param);
    if (target) {
      target.classList.add('invalid');
      const note = target.parentElement && target.parentElement.querySelector('.field-error');
      if (note) {
        note.textContent = error.message;
        note.hidden = false;
      }
      target.focus();
    }
  }

  function modelEditor(ctx, main, id) {
    const title = head('Logical model', null, h('a', { href: '#/models', text: '\u2190 all logical models' }));
    title.querySelector('h1').textContent = id;
    const body = h('div', { class: 'split' });
    main.append(title, body);

    (async () => {
      const [model, providers] = await Promise.all([ctx.api('GET', '/logical-models/' + encodeURIComponent(id)), ctx.api('GET', '/providers')]);
      if (!ctx.alive) return;
      if (!model.ok) {
        body.append(h('div', { class: 'error', text: errorText(model.status, model.data) }));
        return;
      }
      const providerIds = providers.ok ? (providers.data.providers || []).map((p) => p.id) : [];
      let current = model.data;
      const displayName = h('input', { name: 'display_name', value: current.display_name || '', dataset: { param: 'display_name' } });
      const description = h('input', { name: 'description', value: current.description || '', dataset: { param: 'description' } });
      const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: current.enabled, dataset: { param: 'enabled' } });
      const resume = h('input', { type: 'checkbox', name: 'stream_resume', checked: current.stream_resume, dataset: { param: 'stream_resume' } });
      const rowsBody = h('tbody');
      const errors = h('div');
      const saved = h('span', { class: 'muted', role: 'status' });

      function upstreamRow(u) {
        const i = () => [...rowsBody.children].indexOf(row);
        const provider = providerSelect(providerIds, u.provider_id || providerIds[0] || '', '');
        const modelId = h('input', { name: 'model_id', value: u.model_id || '' });
        const weight = h('input', { name: 'base_weight', class: 'weight', inputmode: 'decimal', value: String(u.base_weight ?? 1) });
        const region = h('input', { name: 'region', value: u.region || '', placeholder: 'provider\u2019s' });
        const row = h('tr', { class: 'upstream' },
          h('td', {}, provider, h('span', { class: 'field-error', hidden: true })),
          h('td', {}, modelId, h('span', { class: 'field-error', hidden: true })),
          h('td', {}, weight, h('span', { class: 'field-error', hidden: true })),
          h('td', {}, region, h('span', { class: 'field-error', hidden: true })),
          h('td', {}, h('button', { type: 'button', class: 'ghost', title: 'Remove this upstream', onclick: () => { row.remove(); renumber(); } }, '\u2715')));
        row.upstream = () => ({ ...u, provider_id: provider.value, model_id: modelId.value, base_weight: weightValue(weight.value), region: region.value.trim() || null });
        row.renumber = () => {
          provider.dataset.param = `upstreams[${i()}].provider_id`;
          modelId.dataset.param = `upstreams[${i()}].model_id`;
          weight.dataset.param = `upstreams[${i()}].base_weight`;
          region.dataset.param = `upstreams[${i()}].region`;
        };
        return row;
      }
      function renumber() {
        for (const row of rowsBody.children) row.renumber();
      }
      function fill(m) {
        rowsBody.replaceChildren(...(m.upstreams || []).map(upstreamRow));
        renumber();
      }
      fill(current);

      const form = h('form', { class: 'panel form', id: 'edit-model' },
        h('div', { class: 'form-row' }, field('Display name', displayName, true), field('Description', description, true)),
        h('div', { class: 'form-row' },
          h('label', { class: 'check' }, enabled, 'Enabled'),
          h('label', { class: 'check' }, resume, 'Stream resume')),
        h('h2', { text: 'Upstreams' }),
        h('table', { class: 'upstreams' },
          h('thead', {}, h('tr', {}, ['Provider', 'Model id', 'Weight', 'Region', ''].map((t) => h('th', { text: t })))),
          rowsBody),
        h('div', { class: 'buttons' }, h('button', {
          type: 'button', onclick: () => {
            rowsBody.append(upstreamRow({ provider_id: providerIds[0] || '', model_id: '', base_weight: 1 }));
            renumber();
          },
        }, '+ Add upstream')),
        errors,
        h('div', { class: 'buttons' },
          h('button', { type: 'submit', class: 'primary', id: 'save-model', text: 'Save' }),
          h('button', { type: 'button', id: 'explain', onclick: () => explain() }, 'Explain routing'),
          saved));

      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        saved.textContent = 'Saving\u2026';
        const payload = {
          logical_id: id,
          display_name: displayName.value,
          description: description.value,
          capabilities: current.capabilities,
          upstreams: [...rowsBody.children].map((row) => row.upstream()),
          enabled: enabled.checked,
          stream_resume: resume.checked,
        };
        const r = await ctx.api('PUT', '/logical-models/' + encodeURIComponent(id), payload).catch(ctx.fail);
        if (!r) return;
        if (!r.ok) {
          saved.textContent = '';
          showErrors(form, errors, apiError(r));
          return;
        }
        showErrors(form, errors, null);
        current = r.data;
        fill(current);
        saved.textContent = `Saved at ${new Date().toLocaleTimeString()}`;
        saved.dataset.saved = String(Date.now());
      });

      const explanation = h('section', { class: 'panel', id: 'explanation' },
        h('h2', { text: 'Routing' }),
        h('p', { class: 'muted', text: '\u201cExplain routing\u201d asks the router to pick an upstream now (POST /routing/decide, no upstream is called) and shows each candidate\u2019s score.' }));

      async function explain() {
        const r = await ctx.api('POST', '/routing/decide', { logical_model: id }).catch(ctx.fail);
        if (!r || !ctx.alive) return;
        if (!r.ok) {
          explanation.replaceChildren(h('h2', { text: 'Routing' }), h('div', { class: 'error', text: errorText(r.status, r.data) }));
          return;
        }
        explanation.replaceChildren(h('h2', { text: 'Routing' }), ...decisionView(r.data));
        paintSwatches(explanation);
      }

      body.append(form, explanation);
    })().catch(ctx.fail);
  }

  function decisionView(d) {
    const candidates = d.all_candidates || [];
    const top = Math.max(0, ...candidates.map((c) => c.score || 0)) || 1;
    const rowH = 30, L = 150, W = 400, R = 70;
    const svg = s('svg', { viewBox: `0 0 ${W} ${Math.max(1, candidates.length) * rowH + 8}`, role: 'img', class: 'scores' });
    candidates.forEach((c, i) => {
      const u = c.upstream || {};
      const picked = u.provider_id === d.selected_upstream.provider_id && u.model_id === d.selected_upstream.model_id;
      const y = 4 + i * rowH;
      const width = Math.max(1, ((c.score || 0) / top) * (W - L - R));
      svg.append(
        s('text', { x: L - 8, y: y + 18, 'text-anchor': 'end' }, `${u.provider_id} / ${u.model_id}`),
        s('rect', { x: L, y: y + 6, width, height: 17, rx: 3, fill: picked ? COLORS[0] : '#9fb3d9', 'data-candidate': u.provider_id },
          s('title', {}, `score ${c.score}`)),
        s('text', { x: L + width + 6, y: y + 18 }, `${num(c.score, 3)}${c.circuit && c.circuit.state !== 'closed' ? ' \u00b7 ' + c.circuit.state : ''}`),
      );
    });
    return [
      h('p', { class: 'reasoning', text: d.reasoning }),
      h('p', { class: 'muted' }, `Strategy ${d.strategy_used} \u00b7 decided in ${ms(d.decision_time)} \u00b7 selected `,
        h('code', { text: `${d.selected_upstream.provider_id} / ${d.selected_upstream.model_id}` })),
      svg,
      legend([['selected', COLORS[0]], ['alternative', '#9fb3d9']]),
    ];
  }

  // ------------------------------------------------------------------------------------------
  // Live requests: the SSE feed of /admin/requests/live, read with fetch (EventSource cannot send
  // an Authorization header) and parsed here

  function livePage(ctx, main) {
    const records = []; // newest first, at most LIVE_KEEP
    let seen = 0;
    const state = h('span', { class: 'live-state' }, h('span', { class: 'dot' }), 'connecting\u2026');
    const filter = h('input', { type: 'search', id: 'live-filter', placeholder: 'Filter: key, model, provider or status' });
    const count = h('span', { class: 'muted' });
    const rows = h('tbody');
    main.append(
      head('Live requests', 'Requests as they finish, newest first; only those finished since this page opened'),
      h('div', { class: 'toolbar' }, filter, state, count, h('span', { class: 'spacer' }),
        h('button', { type: 'button', onclick: () => { records.length = 0; draw(); } }, 'Clear')),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'live-table' },
          h('thead', {}, h('tr', {},
            h('th', { text: 'Time' }), h('th', { text: 'Request id' }), h('th', { text: 'Key' }), h('th', { text: 'Logical model' }),
            h('th', { text: 'Provider' }), h('th', { class: 'num', text: 'Status' }), h('th', { class: 'num', text: 'Attempts / failovers' }),
            h('th', { class: 'num', text: 'Latency' }), h('th', { class: 'num', text: 'Tokens (in / out)' }), h('th', { class: 'num', text: 'Cost' }))),
          rows)));

    function setState(kind, text) {
      state.replaceChildren(h('span', { class: 'dot ' + kind }), text);
      state.dataset.state = kind;
    }

    function matches(r, needle) {
      if (!needle) return true;
      return [r.key, r.logical_model, r.model, r.provider, String(r.status)].some((v) => v !== null && v !== undefined && String(v).toLowerCase().includes(needle));
    }

    let scheduled = false;
    function draw() {
      scheduled = false;
      const needle = filter.value.trim().toLowerCase();
      const shown = records.filter((r) => matches(r, needle));
      count.textContent = `${shown.length} shown \u00b7 ${records.length} kept \u00b7 ${seen} received`;
      rows.replaceChildren(...(shown.length ? shown.map(row) : [h('tr', {}, h('td', { colspan: 10, class: 'muted', text: records.length ? 'Nothing matches the filter.' : 'Waiting for requests\u2026' }))]));
    }
    function later() {
      if (!scheduled) {
        scheduled = true;
        setTimeout(draw, 100);
      }
    }
    filter.addEventListener('input', draw);

    function row(r) {
      const status = Number(r.status);
      const cls = status >= 500 || status === 429 ? 'status-bad' : status >= 400 ? 'status-warn' : 'status-ok';
      const tokens = r.tokens ? `${int(r.tokens.prompt)} / ${int(r.tokens.completion)}` : DASH;
      return h('tr', { class: cls, dataset: { requestId: r.request_id || '' } },
        h('td', { class: 'num', text: clock(r.at) }),
        h('td', { class: 'mono', text: r.request_id || DASH }),
        h('td', { text: r.key || DASH }),
        h('td', { text: r.logical_model || DASH }),
        h('td', { title: r.model || '' }, r.provider || DASH),
        h('td', { class: 'num status', text: String(r.status) + (r.stream ? ' \u00b7 stream' : '') }),
        h('td', { class: 'num', text: `${int(r.attempts)} / ${int(r.failovers)}` }),
        h('td', { class: 'num', text: ms(r.latency_ms) }),
        h('td', { class: 'num', text: tokens }),
        h('td', { class: 'num', text: usd(r.cost_usd) }));
    }

    function onEvent(type, data) {
      if (type !== 'request' || !data) return;
      let record;
      try {
        record = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (!record || typeof record !== 'object') return;
      seen += 1;
      records.unshift(record);
      if (records.length > LIVE_KEEP) records.length = LIVE_KEEP;
      later();
    }

    /** One SSE block: `event:` and `data:` lines (comments such as `: keep-alive` skipped). */
    function onBlock(block) {
      let type = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (name === 'event') type = value;
        else if (name === 'data') data.push(value);
      }
      onEvent(type, data.join('\n'));
    }

    async function follow() {
      while (ctx.alive) {
        try {
          const response = await fetch('/admin/requests/live', {
            headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' },
            cache: 'no-store',
            signal: ctx.signal,
          });
          if (response.status === 401 || response.status === 403) {
            const data = await readBody(response);
            logout(`The gateway refused the token (${response.status}): ${errorText(response.status, data)}`);
            return;
          }
          if (!response.ok || !response.body) throw new Error(errorText(response.status, await readBody(response)));
          setState('on', 'live');
          const reader = response.body.getReader();
          const decoder = new TextDecoder();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            // A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            const held = buffer.endsWith('\r') ? '\r' : '';
            buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, '\n');
            let end;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              onBlock(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
            }
            buffer += held;
          }
          if (!ctx.alive) return;
          setState('off', 'the feed ended; reconnecting\u2026');
        } catch (e) {
          if (!ctx.alive || e instanceof AuthError) return;
          setState('off', `disconnected (${e.message}); reconnecting\u2026`);
        }
        await ctx.sleep(2000);
      }
    }

    draw();
    follow();
  }

  // ------------------------------------------------------------------------------------------
  // Keys and spend

  function keysPage(ctx, main) {
    const secretBox = h('div');
    const table = h('div');
    const spend = h('div');
    const armed = new Map(); // key id -> timer of a "Revoke" waiting for its confirmation
    main.append(head('Keys and spend', 'Virtual keys, their budgets, and what was spent in the last 7 days (UTC)'),
      createKeyForm(), secretBox, table, spend);
    let keys = [];

    function showSecret(title, created) {
      secretBox.replaceChildren(h('div', { class: 'secret', id: 'new-secret' },
        h('strong', { text: title }),
        h('div', { class: 'muted', text: 'Copy it now: the gateway keeps only its hash and will not show it again.' }),
        h('code', { text: created.key }),
        h('button', { type: 'button', onclick: () => secretBox.replaceChildren() }, 'I have copied it')));
    }

    function createKeyForm() {
      const name = h('input', { name: 'name', required: true, placeholder: 'e.g. ci-bot', dataset: { param: 'name' } });
      const team = h('input', { name: 'team', placeholder: 'optional', dataset: { param: 'team' } });
      const budget = h('input', { name: 'budget_usd', inputmode: 'decimal', placeholder: 'none', dataset: { param: 'budget_usd' } });
      const period = h('select', { name: 'budget_period', dataset: { param: 'budget_period' } },
        ['monthly', 'daily', 'total'].map((p) => h('option', { value: p, text: p })));
      const rpm = h('input', { name: 'rpm', inputmode: 'numeric', placeholder: 'none', dataset: { param: 'rpm' } });
      const errors = h('div');
      const form = h('form', { class: 'panel form', id: 'create-key' },
        h('h2', { text: 'Create a key' }),
        h('div', { class: 'form-row' }, field('Name', name, true), field('Team', team, true),
          field('Budget (USD)', budget, true), field('Budget period', period), field('Requests / min', rpm, true),
          h('button', { type: 'submit', class: 'primary', text: 'Create key' })),
        errors);
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const payload = { name: name.value.trim(), budget_period: period.value };
        if (team.value.trim()) payload.team = team.value.trim();
        if (budget.value.trim()) payload.budget_usd = weightValue(budget.value);
        if (rpm.value.trim()) payload.rpm = weightValue(rpm.value);
        const r = await ctx.api('POST', '/keys', payload).catch(ctx.fail);
        if (!r) return;
        if (!r.ok) {
          showErrors(form, errors, apiError(r));
          return;
        }
        showErrors(form, errors, null);
        form.reset();
        showSecret(`Key \u201c${r.data.name}\u201d created`, r.data);
        await load();
      });
      return form;
    }

    async function act(method, path, body, after) {
      const r = await ctx.api(method, path, body).catch(ctx.fail);
      if (!r) return;
      if (!r.ok) {
        ctx.fail(new Error(errorText(r.status, r.data)));
        return;
      }
      if (after) after(r.data);
      await load();
    }

    function keyRow(k) {
      const expired = k.expires_at && new Date(k.expires_at).getTime() < Date.now();
      const status = !k.enabled ? ['idle', 'disabled'] : expired ? ['warn', 'expired'] : ['ok', 'enabled'];
      const share = k.budget_usd ? k.spent_usd / k.budget_usd : null;
      const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
      revoke.addEventListener('click', () => {
        if (armed.has(k.id)) {
          clearTimeout(armed.get(k.id));
          armed.delete(k.id);
          act('DELETE', '/keys/' + encodeURIComponent(k.id));
          return;
        }
        revoke.textContent = 'Confirm revoke';
        revoke.classList.add('armed');
        armed.set(k.id, setTimeout(() => {
          armed.delete(k.id);
          revoke.textContent = 'Revoke';
          revoke.classList.remove('armed');
        }, 5000));
      });
      return h('tr', { dataset: { key: k.id } },
        h('td', {}, h('strong', { text: k.name }), h('div', { class: 'muted mono', text: `${k.prefix}\u2026 \u00b7 ${k.id}` })),
        h('td', { text: k.team || DASH }),
        h('td', {}, h('span', { class: 'badge ' + status[0], text: status[1] })),
        h('td', { class: 'budget' },
          h('div', { class: 'num-left', text: k.budget_usd ? `${usd(k.spent_usd)} of ${usd(k.budget_usd)} ${k.budget_period}` : `${usd(k.spent_usd)} \u00b7 no budget` }),
          bar(share)),
        h('td', { class: 'muted', text: when(k.last_used_at) }),
        h('td', { class: 'actions' },
          h('button', { type: 'button', onclick: () => act('PATCH', '/keys/' + encodeURIComponent(k.id), { enabled: !k.enabled }) }, k.enabled ? 'Disable' : 'Enable'),
          h('button', { type: 'button', onclick: () => act('POST', `/keys/${encodeURIComponent(k.id)}/rotate`, undefined, (d) => showSecret(`Key \u201c${d.name}\u201d rotated: its old secret no longer works`, d)) }, 'Rotate'),
          revoke));
    }

    async function load() {
      const r = await ctx.api('GET', '/keys');
      if (!ctx.alive) return;
      if (!r.ok) throw new Error(errorText(r.status, r.data));
      for (const timer of armed.values()) clearTimeout(timer);
      armed.clear();
      keys = r.data.keys || [];
      table.replaceChildren(h('div', { class: 'table-wrap' },
        h('table', { class: 'keys-table' },
          h('thead', {}, h('tr', {}, ['Key', 'Team', 'Status', 'Budget used', 'Last used', ''].map((t) => h('th', { text: t })))),
          h('tbody', {}, keys.length ? keys.map(keyRow) : h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No virtual keys yet.' }))))));
    }

    async function loadSpend() {
      const days = [6, 5, 4, 3, 2, 1, 0].map(day);
      const ask = (group) => Promise.all(days.map((d) => ctx.api('GET', `/usage?group_by=${group}&from=${d}&to=${d}`)));
      const [byModel, byKey] = await Promise.all([ask('model'), ask('key')]);
      if (!ctx.alive) return;
      const names = new Map(keys.map((k) => [k.id, k.name]));
      names.set('gateway', 'gateway / admin token');
      spend.replaceChildren(
        h('h2', { text: 'Spend per day, last 7 days' }),
        h('div', { class: 'grid charts' },
          spendChart('By logical model', days, byModel, (g) => g),
          spendChart('By key', days, byKey, (g) => names.get(g) || g)));
      paintSwatches(spend);
    }

    function spendChart(title, days, answers, label) {
      const failed = answers.find((a) => !a.ok);
      if (failed) return h('section', { class: 'panel' }, h('h3', { text: title }), h('div', { class: 'error', text: errorText(failed.status, failed.data) }));
      const totals = new Map();
      const rows = answers.map((a, i) => {
        const parts = new Map();
        for (const u of a.data.usage || []) {
          const group = label(u.group);
          parts.set(group, (parts.get(group) || 0) + (u.cost_usd || 0));
          totals.set(group, (totals.get(group) || 0) + (u.cost_usd || 0));
        }
        return { label: days[i].slice(5), parts };
      });
      const groups = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
      const colorOf = (g) => COLORS[groups.indexOf(g) % COLORS.length];
      return h('section', { class: 'panel chart spend', dataset: { chart: title } },
        h('div', { class: 'chart-head' }, h('h3', { text: title }), h('span', { class: 'chart-now', text: `total ${usd([...totals.values()].reduce((a, b) => a + b, 0))}` })),
        stackedBars({ rows, groups, colorOf, format: usd }),
        groups.length ? legend(groups.map((g) => [`${g} ${usd(totals.get(g))}`, colorOf(g)])) : null);
    }

    (async () => {
      await load();
      await loadSpend();
    })().catch(ctx.fail);
  }

  // ------------------------------------------------------------------------------------------
  // Start

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('token').value.trim();
      if (value) login(value);
    });
    $('logout').addEventListener('click', () => logout());
    window.addEventListener('hashchange', route);
    route();
  });
})();
