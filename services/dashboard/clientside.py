"""The page's own scripts (Dash clientside callbacks): what must run in the browser."""

from __future__ import annotations

import orjson

from services.dashboard import ids, status
from services.dashboard.controls import AUTORANGE_KEY, RANGE_KEY
from services.dashboard.records import ROLES

UPLOAD_CHECK_JS = """
function(contents, names, config) {
    const none = window.dash_clientside.no_update;
    if (!contents) { return [none, none]; }
    const list = Array.isArray(contents) ? contents : [contents];
    const files = Array.isArray(names) ? names : [names];
    const limit = config.max_upload_bytes;
    for (let i = 0; i < list.length; i++) {
        const size = Math.floor((list[i].length - list[i].indexOf(",") - 1) * 3 / 4);
        if (size > limit) {
            const mb = (size / 1048576).toFixed(1);
            const cap = (limit / 1048576).toFixed(0);
            return [null, files[i] + " is " + mb + " MB; files over " + cap +
                    " MB are refused (split it, or use a larger timeframe)"];
        }
    }
    return [{names: files, contents: list}, "Reading " + files.join(", ") + "…"];
}
"""
"""Refuses a file over `max_upload_bytes` before it is sent."""

HELD_JS = """
    const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array, i2: Int16Array,
                   i1: Int8Array, u4: Uint32Array, u2: Uint16Array, u1: Uint8Array};
    const held = (trace, key) => {
        const value = trace[key];
        if (value && typeof value.bdata === 'string') {
            const bin = atob(value.bdata);
            const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
            trace[key] = new types[value.dtype](bytes.buffer);
        }
        return trace[key];
    };
"""
"""`held(trace, key)`: a trace's array, a typed array decoded from its `bdata` form once."""

CLEAR_FORMING_JS = """
    const clearForming = (gd) => {
        const stale = ((gd.layout || {}).meta || {}).forming || [];
        const done = stale.filter(m => {
            const fx = gd.data[m.trace].x, lx = held(gd.data[m.line], 'x');
            return fx && fx.length && lx && lx.length && fx[fx.length - 1] <= lx[lx.length - 1];
        });
        if (done.length) {
            const empty = () => done.map(() => []);
            Plotly.restyle(gd, {x: empty(), y: empty(), text: empty()}, done.map(m => m.trace));
        }
    };
"""
"""`clearForming(gd)`: removes the segments of a bar in progress that has closed since."""

EXTEND_JS = (
    """
function(step, paused, stored) {
    const dc = window.dash_clientside, none = dc.no_update;
    const gd = document.querySelector('#GRAPH_ID .js-plotly-plot');
    const own = gd && gd.data && ((gd.layout || {}).meta || {}).cursor;
    window.pairsChartBusy = false;
    if (window.pairsPushHeld) {
        window.pairsPushHeld = false;
        setTimeout(() => dc.set_props('PUSH_TICK', {data: Date.now()}), 0);
    }
    if (!step || !step.base || !own) { return [none, none]; }
    const drawn = (gd.pairsDrawn && gd.pairsDrawn.render === own.render) ? gd.pairsDrawn : own;
    const roles = ROLES;
    const same = (p, q) => !!p && !!q && p.key === q.key && p.render === q.render
        && roles.every(r => (p.ids || {})[r] === (q.ids || {})[r]);
    const pending = !stored || stored.render !== drawn.render;
    if (paused || pending || !same(step.base, drawn)) {
        return [(pending || same(stored, drawn)) ? none : drawn, none];
    }
HELD_JS
    const like = (array, values) => (array && !Array.isArray(array))
        ? array.constructor.from(values, v => (v === null ? NaN : v)) : values;
    const after = (trace, xs, strict) => {
        const x = held(trace, 'x');
        const last = x && x.length ? x[x.length - 1] : -Infinity;
        return xs.map((_, j) => j).filter(j => (strict ? xs[j] > last : xs[j] >= last));
    };
    const append = (part, keys, strict) => {
        if (!part || !part.traces.length) { return; }
        const kept = part.traces.map((t, i) => after(gd.data[t], part.x[i], strict));
        const update = {};
        for (const key of keys) {
            update[key] = part.traces.map((t, i) => like(held(gd.data[t], key),
                                                         kept[i].map(j => part[key][i][j])));
        }
        return Plotly.extendTraces(gd, update, part.traces);
    };
    const started = performance.now();
    const drawing = [append(step.lines, ['x', 'y'], true),
                     append(step.marks, ['x', 'y', 'text'], false)];
    gd.pairsDrawn = step.cursor;
    clearForming(gd);
    Promise.all(drawing).then(() => {
        const timings = window.pairsTimings = window.pairsTimings || {forming: []};
        const redraws = timings.redraw = timings.redraw || [];
        redraws.push(performance.now() - started);
        if (redraws.length > 2000) { redraws.shift(); }
    });
    return [step.cursor, Date.now()];
}
""".replace("HELD_JS", HELD_JS + CLEAR_FORMING_JS)
    .replace("GRAPH_ID", ids.GRAPH)
    .replace("ROLES", orjson.dumps(ROLES).decode())
    .replace("PUSH_TICK", ids.PUSH_TICK)
)
"""Appends a live step's points (`figures.Extension`) to the drawn traces in place, and moves
the cursor store on to the step's cursor: the page is the one that says what it holds.

A step is drawn only onto what it continues: its `base` is the drawn figure's cursor
(`layout.meta.cursor`, moved on by each step drawn onto it). Any other step is left out, and
the next one starts again from the cursor store:
- one that comes while a full render is on its way (the store names a render `dcc.Graph` has
  not drawn yet: it draws a new figure some time after its callback answered);
- one made from a cursor the page has moved past, or for a view that was replaced;
- one that comes after Pause, so that the screen and an export hold the same bars.
When the store and the drawn figure disagree on the same render, the store is set back to
what is drawn.

A full render sends typed arrays (`{"dtype", "bdata"}`), which plotly.js draws but cannot
extend, and a typed array extends only with one of its own type: so each array is decoded into
its typed array the first time it is extended, and the new values are made the same type.
Only points after a trace's last one are appended (a line's times increase strictly, markers'
do not decrease). The segments of a bar in progress that the step closed are removed. The time
each redraw takes (from the call to the drawn traces) goes in `window.pairsTimings.redraw`, for
the browser bench."""

ZOOM_FILTER_JS = """
function(relayout) {
    const keys = relayout ? Object.keys(relayout) : [];
    const about = keys.some(k => /RANGE/.test(k) || /AUTORANGE/.test(k));
    return about ? relayout : window.dash_clientside.no_update;
}
""".replace("AUTORANGE", AUTORANGE_KEY.pattern).replace("RANGE", RANGE_KEY.pattern)
"""Passes on only the chart events about its time range. Dash drops the answer of a server
callback that is called again before it answers: an `autosize` event right after a
double-click would otherwise drop the zoom reset. A clientside callback runs at once."""

SLOW_POLL_MS = 5_000
"""The poll while the push channel is open: a safety net, not the way updates come."""
PUSH_MIN_GAP_MS = 40
"""Pushed events closer than this make one chart request (Dash drops the answer of a callback
called again before it answers, so a burst would only cost requests)."""


FORMING_JS = """
    const fmt = (v, d) => (v === null || v === undefined) ? '-'
        : Number(v).toLocaleString(undefined, {maximumFractionDigits: d});
    const legText = (f, leg) => `${fmt(f[leg + '_close'], 6)} last`
        + ` · O ${fmt(f[leg + '_open'], 6)} H ${fmt(f[leg + '_high'], 6)}`
        + ` L ${fmt(f[leg + '_low'], 6)}`
        + ` · vol ${fmt(f[leg + '_volume'], 4)} · ${f[leg + '_trades']} trades · forming`;
    const textOf = (field, f) => field === 'zscore'
        ? `z ${fmt(f.zscore, 2)} at the last prices (β ${fmt(f.beta, 4)} and band of the`
          + ' last closed window) · provisional'
        : legText(f, field[0]);
    const drawForming = (f) => {
        const gd = document.querySelector('#GRAPH_ID .js-plotly-plot');
        const meta = gd && gd.data && ((gd.layout || {}).meta || {}).forming;
        if (!meta) { return; }
        const xs = [], ys = [], texts = [];
        for (const m of meta) {
            const x = held(gd.data[m.line], 'x'), y = held(gd.data[m.line], 'y');
            const value = f[m.field], last = x && x.length ? x[x.length - 1] : null;
            if (last === null || value === null || value === undefined || !(f.start > last)) {
                xs.push([]); ys.push([]); texts.push([]);
                continue;
            }
            xs.push([last, f.start]); ys.push([y[y.length - 1], value]);
            texts.push(['', textOf(m.field, f)]);
        }
        const timings = window.pairsTimings = window.pairsTimings || {forming: []};
        Plotly.restyle(gd, {x: xs, y: ys, text: texts}, meta.map(m => m.trace)).then(() => {
            timings.forming.push({recv_ts: f.recv_ts, start: f.start, drawn: Date.now()});
            if (timings.forming.length > 2000) { timings.forming.shift(); }
        });
    };
""".replace("GRAPH_ID", ids.GRAPH)
"""`drawForming(forming)`: the dotted segments from each line's last closed point to the bar in
progress (`shared.schemas.Forming`), with its values on hover. Each draw is timed into
`window.pairsTimings.forming` (receive time of its newest trade, and when the redraw resolved)
for the browser bench."""


CHART_BUSY_JS = """
function(busy) {
    window.pairsChartBusy = !!busy;
    if (!busy && window.pairsPushHeld) {
        setTimeout(() => {
            if (!window.pairsPushHeld || window.pairsChartBusy) { return; }
            window.pairsPushHeld = false;
            window.dash_clientside.set_props('PUSH_TICK', {data: Date.now()});
        }, HELD_MS);
    }
    return window.dash_clientside.no_update;
}
""".replace("PUSH_TICK", ids.PUSH_TICK).replace("HELD_MS", str(PUSH_MIN_GAP_MS))
"""Notes that the chart callback runs (`ids.CHART_BUSY`, set by Dash while it does): pushed news
is held back meanwhile and sent on once, by the `extend` script, which runs after every answer
(`callbacks.ANSWERED`) and has moved the page's cursor on by then. Dash drops the answer of a
callback called again before it answers: each pushed event asking for a full render that takes
longer than the events' gap (a view switched on a loaded machine) dropped the one before, and
the page never drew the view; and a request sent before the step just answered is drawn starts
from a cursor the page is about to leave. When a request gets no answer at all, the held news
goes on shortly after Dash gives up on it."""


def push_js(poll_ms: int) -> str:
    """Opens the view's push channel (`/push`, server-sent events) and closes the previous one;
    each event asks the chart callback for the step after the cursor, and one that names the
    alerts stream the alert feed for its new rows too. While the channel is
    down the page polls every `poll_ms` (DASH_UPDATE_MS) and the status line says so."""
    return (
        """
function(view, paused) {
    const dc = window.dash_clientside;
HELD_JS FORMING_JS
    const texts = TEXTS;
    const say = (state) => dc.set_props('PUSH_STATUS', {children: texts[state]});
    const poll = (ms) => dc.set_props('LIVE_TICK', {interval: ms});
    if (window.pairsPush) { window.pairsPush.close(); window.pairsPush = null; }
    if (!view || view.mode !== 'live' || paused) { poll(POLL_MS); say('off'); return 'off'; }
    if (typeof EventSource === 'undefined') {
        poll(POLL_MS); say('unsupported'); return 'unsupported';
    }
    const source = new EventSource('/push?view=' + encodeURIComponent(JSON.stringify(view)));
    window.pairsPush = source;
    let last = 0, pending = null;
    const fire = () => {
        pending = null;
        if (window.pairsChartBusy) { window.pairsPushHeld = true; return; }
        last = Date.now(); dc.set_props('PUSH_TICK', {data: last});
    };
    source.onopen = () => {
        poll(SLOW_POLL_MS); say('open'); dc.set_props('PUSH_STATE', {data: 'open'});
    };
    source.onmessage = (e) => {
        if (window.pairsPush !== source) { return; }
        const moved = JSON.parse(e.data);
        if (moved.alerts) { dc.set_props('ALERTS_PUSHED', {data: moved.alerts}); }
        if (pending) { return; }
        pending = setTimeout(fire, Math.max(0, last + MIN_GAP_MS - Date.now()));
    };
    source.addEventListener('forming', (e) => {
        if (window.pairsPush === source) { drawForming(JSON.parse(e.data)); }
    });
    source.onerror = () => {
        if (window.pairsPush !== source) { return; }
        const state = source.readyState === EventSource.CLOSED ? 'refused' : 'lost';
        poll(POLL_MS); say(state); dc.set_props('PUSH_STATE', {data: state});
    };
    say('connecting');
    return 'connecting';
}
""".replace("HELD_JS", HELD_JS)
        .replace("FORMING_JS", FORMING_JS)
        .replace("TEXTS", orjson.dumps(status.push_texts(poll_ms)).decode())
        .replace("SLOW_POLL_MS", str(SLOW_POLL_MS))
        .replace("POLL_MS", str(poll_ms))
        .replace("MIN_GAP_MS", str(PUSH_MIN_GAP_MS))
        .replace("PUSH_STATUS", ids.PUSH_STATUS)
        .replace("PUSH_STATE", ids.PUSH_STATE)
        .replace("PUSH_TICK", ids.PUSH_TICK)
        .replace("ALERTS_PUSHED", ids.ALERTS_PUSHED)
        .replace("LIVE_TICK", ids.LIVE_TICK)
    )
