/*
 * Hover values: the camera counts of the frame on screen at the pointer, its position in the axes'
 * units and the pulse id. The value is asked of the server for that very frame (/api/pixel, by its
 * sequence number and this page's processing), so it is never a colour level, never an older frame;
 * one request at a time, the newest pointer position wins.
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var state = {tip: null, pointer: null, pending: false, shown: null, wanted: null};

    function tip() {
        if (!state.tip) {
            state.tip = document.createElement("div");
            state.tip.className = "sov-hover";
            state.tip.id = "image-hover";
            document.body.appendChild(state.tip);
        }
        return state.tip;
    }

    function format(value) {
        // camera counts are integers: every digit; other values with 6 significant digits
        if (!isFinite(value)) {
            return "—";
        }
        if (Number.isInteger(value)) {
            return String(value);
        }
        var magnitude = Math.abs(value);
        return magnitude >= 1e6 || magnitude < 1e-3 ? value.toExponential(5) : String(Number(value.toPrecision(6)));
    }

    function pixelAt(event) {
        // The pixel (column, row) of the frame on screen under the pointer, or null.
        var p = sov.painter, g = p.geometry, frame = p.frame, gd = p.gd;
        if (!g || !frame || !gd) {
            return null;
        }
        var rect = gd.getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
        var b = g.image;
        if (x < b.left || x > b.left + b.width || y < b.top || y > b.top + b.height) {
            return null;
        }
        var xr = g.xrange, yr = g.yrange, meta = frame.meta;
        var cx = xr[0] + (x - b.left) / b.width * (xr[1] - xr[0]);
        var cy = yr[1] - (y - b.top) / b.height * (yr[1] - yr[0]);
        var col = Math.round((cx - meta.x.origin) / meta.x.step), row = Math.round((cy - meta.y.origin) / meta.y.step);
        if (col < 0 || row < 0 || col >= meta.shape[1] || row >= meta.shape[0]) {
            return null;
        }
        return {col: col, row: row, clientX: event.clientX, clientY: event.clientY};
    }

    function describe(meta, at, value) {
        // Axis units, and the pixel besides unless the axes are the pixel indices themselves.
        var x = meta.x, y = meta.y;
        var identity = x.origin === 0 && x.step === 1 && y.origin === 0 && y.step === 1;
        var where = identity ? "x " + at.col + ", y " + at.row + " px" :
            "x " + format(x.origin + at.col * x.step) + " " + x.unit + ", y " + format(y.origin + at.row * y.step) + " " +
            y.unit + " (pixel " + at.col + ", " + at.row + ")";
        return where + " · " + (value === undefined ? "…" : format(value) + " counts") + " · pulse " + meta.pulse_id;
    }

    function ask() {
        var p = sov.painter, at = state.pointer, frame = p.frame;
        if (state.pending || !at || !frame) {
            return;
        }
        var meta = frame.meta, key = [meta.seq, at.col, at.row, meta.processing.average, meta.processing.background].join();
        if (state.shown === key) {
            return;
        }
        state.pending = true;
        var c = p.config || {};
        var q = "camera=" + encodeURIComponent(meta.camera) + "&seq=" + meta.seq + "&col=" + at.col + "&row=" + at.row +
            "&client=" + p.client + "&avg=" + (c.average || 1) + "&bg=" + (c.background ? 1 : 0);
        fetch("api/pixel?" + q, {cache: "no-store", credentials: "same-origin"}).then(function (reply) {
            return reply.ok ? reply.json() : null;
        }).then(function (answer) {
            state.pending = false;
            if (answer && state.pointer && p.frame && p.frame.meta.seq === answer.seq) {
                state.shown = key;
                show(p.frame.meta, state.pointer, answer.col === state.pointer.col && answer.row === state.pointer.row ?
                    answer.value : undefined);
            }
            ask();  // the pointer or the frame may have moved on meanwhile
        }).catch(function () {
            state.pending = false;
        });
    }

    function show(meta, at, value) {
        var node = tip();
        node.textContent = describe(meta, at, value);
        node.style.left = (at.clientX + 14) + "px";
        node.style.top = (at.clientY + 14) + "px";
        node.style.display = "block";
    }

    function hide() {
        state.pointer = null;
        state.shown = null;
        if (state.tip) {
            state.tip.style.display = "none";
        }
    }

    sov.hover = {
        frameChanged: function () {  // a new frame on screen: its value at the pointer
            if (state.pointer && sov.painter.frame) {
                show(sov.painter.frame.meta, state.pointer, undefined);
                ask();
            }
        }
    };

    document.addEventListener("mousemove", function (event) {
        var graph = document.getElementById("image-graph");
        if (!graph || !graph.contains(event.target)) {
            if (state.pointer) {
                hide();
            }
            return;
        }
        var at = pixelAt(event);
        if (!at) {
            hide();
            return;
        }
        var moved = !state.pointer || state.pointer.col !== at.col || state.pointer.row !== at.row;
        state.pointer = at;
        if (moved) {
            state.shown = null;
            show(sov.painter.frame.meta, at, undefined);
        } else if (state.tip) {
            state.tip.style.left = (at.clientX + 14) + "px";
            state.tip.style.top = (at.clientY + 14) + "px";
        }
        ask();
    }, {passive: true});
})();
