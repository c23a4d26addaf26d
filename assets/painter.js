/*
 * The painter: live frames of #image-graph, fetched from the app's own endpoint (/api/frame, see
 * docs/api.md) and painted into a canvas laid over the heatmap's plot area.
 *
 * plotly.js draws the figure the app sets (axes in the camera's units, colour bar, profile panels,
 * regions of interest) only when that changes; redrawing a heatmap figure per frame costs plotly.js
 * 45-60 ms of main thread, painting the levels through a 256-colour table about 1 ms. The geometry
 * comes from the layout the app fixed (margins without auto-expansion, domains) and the axis ranges
 * plotly.js keeps in gd.layout (read after plotly_afterplot / plotly_relayout). `?draw=plotly` in
 * the address hands every frame to plotly.js instead (Plotly.restyle): the benchmark's comparison and
 * the reference the browser tests check the canvas against, pixel for pixel.
 *
 * The painting itself is in canvas.js. One request at a time: the next goes out a display period after the previous one was due, and
 * only once its answer arrived, so a slow link or browser lowers the frame rate and never queues.
 * Public interfaces only: dash_clientside (settings arrive through clientside callbacks, sov.js),
 * the Plotly global, gd.on(...) events, gd.layout / gd.data.
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var TYPES = {u1: Uint8Array, f4: Float32Array, f8: Float64Array};
    var SCREEN_PX_PER_BIN = 2;  // bins asked for: one per 2 x 2 CSS pixels (zoom shows native pixels)
    var RETRY_MS = 1000;

    var painter = sov.painter = {
        plotly: /[?&]draw=plotly(&|$)/.test(window.location.search),
        client: Math.random().toString(36).slice(2, 12) + Date.now().toString(36),
        config: null,  // camera and processing (IMAGE_REQUEST store)
        settings: null,  // colours (IMAGE_SETTINGS store)
        periodMs: 100,
        paused: false,
        held: null,  // seq shown while paused
        frame: null,  // {meta, parts, key}: the frame on screen
        loop: {pending: false, timer: null, due: null, sentAt: 0, generation: 0, controller: null},
        geometry: null, gd: null, stream: null, messageAt: null
    };

    // ------------------------------------------------------------------------- requests

    function query(extra) {
        var c = painter.config || {}, s = painter.settings || {}, g = painter.geometry;
        var q = {camera: c.camera || "", cmap: s.colormap || "Viridis", scale: s.scale || "linear",
                 avg: c.average || 1, bg: c.background ? 1 : 0, client: painter.client};
        if (s.manual) {
            q.zmin = s.zmin;
            q.zmax = s.zmax;
        }
        if (c.saturation) {
            q.sat = c.saturationLevel === null ? "max" : c.saturationLevel;  // max: the image type's
        }
        if (g) {
            q.w = Math.max(8, Math.round(g.image.width / SCREEN_PX_PER_BIN));
            q.h = Math.max(8, Math.round(g.image.height / SCREEN_PX_PER_BIN));
            q.xr = g.xrange.join(",");
            q.yr = g.yrange.join(",");
        }
        return Object.assign(q, extra || {});
    }

    function encode(q) {
        return Object.keys(q).filter(function (k) { return q[k] !== undefined && q[k] !== null && q[k] !== ""; })
            .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(q[k]); }).join("&");
    }
    painter.query = function (extra) { return encode(query(extra)); };

    function viewKey(q) {
        var copy = Object.assign({}, q);
        delete copy.after;
        return encode(copy);
    }

    painter.request = function (due) {
        var loop = painter.loop;
        loop.due = due === undefined ? null : due;
        if (loop.timer !== null) {
            clearTimeout(loop.timer);
            loop.timer = null;
        }
        if (loop.pending || document.hidden || !painter.config || !graph()) {
            return;
        }
        if (painter.paused && (painter.held === null || (painter.frame && painter.frame.key === heldKey()))) {
            return;  // paused: only a new view of the held frame is asked for
        }
        var q = painter.paused ? query({seq: painter.held}) : query();
        var key = viewKey(q);
        if (!painter.paused && painter.frame && painter.frame.key === key) {
            q.after = painter.frame.meta.seq;  // "unchanged" (204) unless a newer frame exists
        }
        var generation = loop.generation;
        loop.pending = true;
        loop.sentAt = performance.now();
        loop.controller = window.AbortController ? new window.AbortController() : null;
        fetch("api/frame?" + encode(q), {cache: "no-store", credentials: "same-origin",
                                         signal: loop.controller ? loop.controller.signal : undefined}).then(function (reply) {
            noteStream(reply.headers.get("X-SOV-Stream"));
            if (reply.status === 204) {
                return null;
            }
            if (!reply.ok) {
                return reply.json().then(function (body) { throw new Error(body.error || reply.statusText); },
                                         function () { throw new Error("HTTP " + reply.status); });
            }
            return reply.arrayBuffer();
        }).then(function (body) {
            if (generation !== loop.generation) {
                return;  // the camera changed meanwhile
            }
            sov.overlay.message("");
            if (body) {
                show(decode(body), key);
            }
            answered(false);
        }).catch(function (error) {
            if (generation !== loop.generation) {
                return;  // aborted or overtaken: the request that replaced it goes on
            }
            sov.overlay.message(String(error.message || error));
            answered(true);
        });
    };

    function heldKey() {
        return viewKey(query({seq: painter.held}));
    }

    function answered(failed) {
        var loop = painter.loop;
        loop.pending = false;
        // A fixed cadence (previous due time + period) while answers keep up: timer lateness does
        // not add up. An answer later than a whole period restarts the cadence from now.
        var now = performance.now();
        var period = failed ? RETRY_MS : painter.periodMs;
        var due = (loop.due === null ? loop.sentAt : loop.due) + period;
        if (due < now - period) {
            due = now;
        }
        loop.timer = setTimeout(function () {
            loop.timer = null;
            painter.request(due);
        }, Math.max(0, due - now));
    }

    painter.restart = function () {  // settings or camera changed: ask now, drop the request on its way
        var loop = painter.loop;
        loop.generation += 1;
        if (loop.pending && loop.controller) {
            loop.controller.abort();
        }
        loop.pending = false;
        painter.request();
    };

    painter.watchdog = function () {
        // A request stuck for 5 s (server restarted, network glitch) is given up, not doubled.
        var loop = painter.loop;
        if (loop.pending && performance.now() - loop.sentAt > 5000) {
            painter.restart();
        } else if (!loop.pending && loop.timer === null) {
            painter.request();
        }
        if (painter.paused) {
            sov.keepHeld();
        }
        sov.overlay.tick();
    };

    function noteStream(header) {
        if (!header) {
            return;
        }
        try {
            painter.stream = JSON.parse(header);
        } catch (e) {
            return;
        }
        if (typeof painter.stream.age_s === "number") {
            painter.messageAt = Date.now() - painter.stream.age_s * 1000;
        }
        sov.overlay.tick();
    }

    function decode(buffer) {
        var n = new DataView(buffer).getUint32(0, true);
        var meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
        var start = 4 + n + ((8 - (4 + n) % 8) % 8), parts = {};
        meta.parts.forEach(function (p) {
            parts[p[0]] = new TYPES[p[1]](buffer, start + p[3], p[2]);
        });
        return {meta: meta, parts: parts};
    }
    painter.decode = decode;

    // ------------------------------------------------------------------------- geometry

    function graph() {
        var gd = document.querySelector("#image-graph .js-plotly-plot");
        if (gd && gd !== painter.gd && typeof gd.on === "function") {
            painter.gd = gd;
            painter.geometry = null;
            gd.on("plotly_afterplot", geometryChanged);
            gd.on("plotly_relayout", geometryChanged);
            gd.on("plotly_relayouting", function () {  // a pan in progress: the picture follows
                measure();
                if (!painter.plotly) {
                    repaint();
                }
            });
        }
        return painter.gd;
    }
    painter.graph = graph;

    function box(margin, width, height, xd, yd) {
        var w = width - margin.l - margin.r, h = height - margin.t - margin.b;
        return {left: margin.l + xd[0] * w, top: margin.t + (1 - yd[1]) * h, width: (xd[1] - xd[0]) * w,
                height: (yd[1] - yd[0]) * h};
    }

    function measure() {
        // The plot areas, from what the app fixed (margins, domains) and plotly's current ranges.
        var gd = painter.gd, layout = gd && gd.layout;
        if (!layout || !layout.xaxis || !layout.yaxis || !layout.margin || !layout.meta ||
                !Array.isArray(layout.xaxis.range) || !Array.isArray(layout.yaxis.range)) {
            painter.geometry = null;
            return null;
        }
        var m = layout.margin, w = gd.clientWidth, h = gd.clientHeight, d = layout.meta.domains;
        painter.geometry = {
            width: w, height: h, meta: layout.meta,
            image: box(m, w, h, layout.xaxis.domain, layout.yaxis.domain),
            profileX: box(m, w, h, layout.xaxis.domain, d.profile_x_y),
            profileY: box(m, w, h, d.profile_y_x, layout.yaxis.domain),
            xrange: layout.xaxis.range.slice(0, 2).map(Number), yrange: layout.yaxis.range.slice(0, 2).map(Number)
        };
        return painter.geometry;
    }
    painter.measure = measure;

    function geometryKey(g) {
        return g ? g.xrange.concat(g.yrange, g.width, g.height).join() : "";
    }

    function geometryChanged() {
        // plotly.js drew: the app's figure changed, a zoom or pan ended, the size changed, or (with
        // ?draw=plotly) a frame was drawn. Repaint and ask for the new region only if the geometry moved.
        var before = geometryKey(painter.geometry);
        var g = measure();
        sov.colorbar.apply();
        if (painter.plotly && painter.frame && sov.plotlyStale(painter.gd)) {
            repaint();  // the app's figure replaced the frame plotly.js had been given
        }
        if (!g || before === geometryKey(g)) {
            return;
        }
        if (!painter.plotly) {
            repaint();
        }
        painter.restart();  // a new region (zoom, pan, size): ask for it at once
    }

    painter.toPixels = function (g) {
        // data -> CSS pixels of the graph div, for the image axes
        var b = g.image, xr = g.xrange, yr = g.yrange;
        return {
            x: function (x) { return b.left + (x - xr[0]) / (xr[1] - xr[0]) * b.width; },
            y: function (y) { return b.top + (yr[1] - y) / (yr[1] - yr[0]) * b.height; }
        };
    };

    // ------------------------------------------------------------------------- painting

    function show(frame, key) {
        frame.key = key;
        painter.frame = frame;
        sov.colorbar.want(frame.meta.ticks);
        repaint();
        sov.published(frame);
        if (sov.hover) {
            sov.hover.frameChanged();
        }
    }

    function repaint() {
        var frame = painter.frame, g = painter.geometry || measure();
        if (!frame || !g || !sov.canvas.layer()) {
            return;
        }
        if (painter.plotly) {
            sov.plotlyDraw(painter.gd, frame);
        } else {
            sov.canvas.paint(frame, g);
        }
        sov.overlay.frame(frame, g);
    }
    painter.repaint = repaint;

    document.addEventListener("visibilitychange", function () {
        if (!document.hidden) {
            painter.request();
        }
    });
})();
