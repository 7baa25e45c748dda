"""The page's own scripts (Dash clientside callbacks): what must run in the browser."""

from __future__ import annotations

from services.dashboard import ids
from services.dashboard.controls import AUTORANGE_KEY, RANGE_KEY

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

EXTEND_JS = """
function(step) {
    const none = window.dash_clientside.no_update;
    const gd = document.querySelector('#GRAPH_ID .js-plotly-plot');
    if (!step || !gd || !gd.data) { return none; }
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
        Plotly.extendTraces(gd, update, part.traces);
    };
    append(step.lines, ['x', 'y'], true);
    append(step.marks, ['x', 'y', 'text'], false);
    return Date.now();
}
""".replace("GRAPH_ID", ids.GRAPH)
"""Appends a live step's points (`figures.Extension`) to the drawn traces in place.

A full render sends typed arrays (`{"dtype", "bdata"}`), which plotly.js draws but cannot
extend, and a typed array extends only with one of its own type: so each array is decoded into
its typed array the first time it is extended, and the new values are made the same type.
Only points after a trace's last one are appended (a line's times increase strictly, markers'
do not decrease), so a step that reaches the page after a full render that already drew its
points adds nothing twice."""

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
