/*
 * Self-clocking update loops for Stream Online Viewer.
 *
 * A dcc.Interval fires whether or not the previous answer has arrived, and dash-renderer drops an
 * answer that is overtaken by a newer request (plotly/dash#943): a server slower than the interval
 * then never updates the page at all. Here each loop sends its next request only after the
 * previous answer arrived, waiting whatever is left of the period; a slow server or a slow browser
 * therefore lowers the frame rate instead of freezing it. A 1 s watchdog restarts a loop whose
 * answer never came (server restarted, network glitch). Hidden tabs and paused pages send nothing.
 *
 * Both loops post their requests to their Dash callbacks themselves and hand the answers to the
 * components with set_props: going through dash-renderer's callback machinery (queues, loading
 * states, a re-index of the layout for every output and the answer's own callback) cost about as
 * much main-thread time per frame as plotly.js drawing the heatmap. The server side is the same
 * Dash callback either way; if this path is unavailable the loops fall back to the stores.
 * New frames are painted by the "live layer" (a canvas over the heatmap, see below) whenever only
 * the pixels changed; plotly.js draws everything else.
 */
(function () {
    "use strict";

    var loops = {
        image: {store: "image-request", response: "image-response", n: 0, sentAt: 0, due: null, pending: false, timer: null,
                applied: 0, generation: 0},
        history: {store: "history-request", response: "history-response", n: 0, sentAt: 0, due: null, pending: false, timer: null,
                applied: 0, generation: 0}
    };
    var state = {paused: false, config: {image_period_ms: 100, history_period_ms: 500}};
    var STUCK_MS = 5000;
    // Readings and the info line are asked for this often at most: each changed text costs
    // dash-renderer a re-index of the whole layout, and 4 Hz is as fast as anyone reads numbers.
    var TEXT_PERIOD_MS = 250;
    var textsAt = -Infinity;

    function graphSize() {
        var el = document.getElementById("image-graph");
        return el ? {w: el.clientWidth, h: el.clientHeight} : {w: 0, h: 0};
    }

    function send(name, due) {
        var loop = loops[name];
        loop.due = due === undefined ? null : due;
        if (loop.timer !== null) {
            clearTimeout(loop.timer);
            loop.timer = null;
        }
        if (state.paused || document.hidden || !window.dash_clientside || !window.dash_clientside.set_props) {
            return;
        }
        loop.n += 1;
        loop.sentAt = performance.now();
        loop.pending = true;
        var size = graphSize();
        var data = {n: loop.n, w: size.w, h: size.h};
        if (name === "image") {
            data.texts = loop.sentAt - textsAt >= TEXT_PERIOD_MS;
            if (data.texts) {
                textsAt = loop.sentAt;
            }
        }
        if (!direct.failed && window.store && window.fetch) {
            fetchDirect(name, data);
            return;
        }
        window.dash_clientside.set_props(loop.store, {data: data});
    }

    function period(name) {
        var key = name === "image" ? "image_period_ms" : "history_period_ms";
        return state.config[key] || 100;
    }

    function answered(name) {
        var loop = loops[name];
        loop.pending = false;
        if (loop.timer !== null) {
            clearTimeout(loop.timer);
        }
        // Requests go out on a fixed cadence (the previous due time + period) as long as the answers
        // keep up: timer lateness then does not add up, and -d 0.05 asks for 20 frames per second,
        // not a few less. An answer later than a whole period restarts the cadence from now.
        var now = performance.now();
        var due = (loop.due === null ? loop.sentAt : loop.due) + period(name);
        if (due < now - period(name)) {
            due = now;
        }
        loop.timer = setTimeout(function () {
            loop.timer = null;
            send(name, due);
        }, Math.max(0, due - now));
    }

    function kick() {
        Object.keys(loops).forEach(function (name) {
            send(name);
        });
    }

    document.addEventListener("visibilitychange", function () {
        if (!document.hidden) {
            kick();
        }
    });

    // -------------------------------------------------------------------------- direct requests

    // Both loops post to their Dash callback themselves (same endpoint, same request and answer as
    // dash-renderer's) and hand the outputs to the components with set_props. The image answer goes
    // to the live layer below; the history answer's outputs (four charts, the statistics table) are
    // applied one per task, so a frame arriving meanwhile is drawn between them instead of waiting
    // for one ~90 ms task. If the app's dependencies cannot be read, dash-renderer does it all.
    var direct = {specs: {}, failed: false};

    function storeProp(id, prop) {
        // The current value of a component property, as dash-renderer holds it.
        var store = window.store && window.store.getState && window.store.getState();
        var path = store && store.paths && store.paths.strs && store.paths.strs[id];
        if (!path) {
            return undefined;
        }
        var node = store.layout;
        for (var i = 0; i < path.length && node; i++) {
            node = node[path[i]];
        }
        return node && node.props ? node.props[prop] : undefined;
    }

    function callbackSpec(store) {
        // The callback a loop's store triggers, from the app itself (never a stale copy).
        if (direct.specs[store]) {
            return Promise.resolve(direct.specs[store]);
        }
        var config = document.getElementById("_dash-config");
        var prefix = (config && JSON.parse(config.textContent).requests_pathname_prefix) || "/";
        return fetch(prefix + "_dash-dependencies").then(function (reply) {
            if (!reply.ok) {
                throw new Error("dependencies: HTTP " + reply.status);
            }
            return reply.json();
        }).then(function (deps) {
            var dep = deps.filter(function (d) {
                return !d.clientside_function && d.inputs.length && d.inputs[0].id === store;
            })[0];
            if (!dep || dep.output.indexOf("..") !== 0) {
                throw new Error("no callback for " + store);
            }
            var outputs = dep.output.slice(2, -2).split("...").map(function (item) {
                var dot = item.lastIndexOf(".");
                return {id: item.slice(0, dot), property: item.slice(dot + 1)};
            });
            direct.specs[store] = {url: prefix + "_dash-update-component", dep: dep, outputs: outputs};
            return direct.specs[store];
        });
    }

    function assign(target, location, value) {
        // Immutable update (plotly.react and dcc.Graph compare by identity), as dash-renderer's Patch.
        if (location.length === 0) {
            return value;
        }
        var copy = Array.isArray(target) ? target.slice() : Object.assign({}, target);
        copy[location[0]] = assign(copy[location[0]], location.slice(1), value);
        return copy;
    }

    function patched(figure, update) {
        if (!update || !update.__dash_patch_update) {
            return update;  // a whole figure
        }
        var result = figure;
        for (var i = 0; i < update.operations.length; i++) {
            var op = update.operations[i];
            if (op.operation !== "Assign") {
                return null;  // only assignments are sent; anything else goes the long way
            }
            result = assign(result, op.location, op.params.value);
        }
        return result;
    }

    function fetchDirect(name, data) {
        var loop = loops[name];
        var n = data.n;
        var generation = loop.generation;
        callbackSpec(loop.store).then(function (spec) {
            var current = function (item) {
                var value = item.id === loop.response && item.property === "data" ?
                    (loop.last === undefined ? null : loop.last) : storeProp(item.id, item.property);
                return {id: item.id, property: item.property, value: value};
            };
            var body = {
                output: spec.dep.output,
                outputs: spec.outputs,
                inputs: spec.dep.inputs.map(function (item) {
                    return item.id === loop.store ? {id: item.id, property: item.property, value: data} : current(item);
                }),
                state: spec.dep.state.map(current),
                changedPropIds: [loop.store + ".data"]
            };
            return fetch(spec.url, {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(body)});
        }).then(function (reply) {
            if (reply.status === 204) {
                return {};
            }
            if (!reply.ok) {
                throw new Error(name + " callback: HTTP " + reply.status);
            }
            return reply.json();
        }).then(function (answer) {
            if (generation !== loop.generation) {
                return;  // dash-renderer answered a settings change meanwhile; its answer stands
            }
            var response = answer.response || {};
            if (n <= loop.applied) {  // an answer overtaken by a newer one is dropped
                answered(name);
                return;
            }
            loop.applied = n;
            if (response[loop.response]) {
                loop.last = response[loop.response].data;
            }
            var ids = Object.keys(response).filter(function (id) {
                return id !== loop.response;
            });
            if (name === "image") {
                ids.forEach(function (id) {
                    applyImage(id, response[id], loop.last);
                });
                answered(name);
                frameDone();
                return;
            }
            (function next() {  // one output at a time, each in the gap after an image frame
                if (generation !== loop.generation) {
                    return;
                }
                var id = ids.shift();
                if (id === undefined) {
                    answered(name);
                    return;
                }
                afterFrame(function () {
                    if (generation === loop.generation) {
                        window.dash_clientside.set_props(id, response[id]);
                    }
                    next();
                });
            })();
        }).catch(function (error) {
            if (!direct.specs[loop.store]) {
                direct.failed = true;  // no dependencies: use dash-renderer from now on
            }
            if (window.console) {
                window.console.warn(name + " request failed:", error);
            }
            answered(name);
        });
    }

    // Work that may wait (a history chart costs plotly.js 20-40 ms) runs right after an image frame
    // has been put on screen, so it has a whole period before the next frame is due instead of
    // holding that frame up; without frames (paused, hidden, stalled) it runs after GAP_WAIT_MS.
    var GAP_WAIT_MS = 250;
    var gapWaiters = [];

    function afterFrame(work) {
        var done = false;
        var run = function () {
            if (!done) {
                done = true;
                var index = gapWaiters.indexOf(run);
                if (index >= 0) {
                    gapWaiters.splice(index, 1);
                }
                work();
            }
        };
        gapWaiters.push(run);
        setTimeout(run, GAP_WAIT_MS);
    }

    function frameDone() {
        // One waiting piece of work per frame, after the browser has painted that frame.
        var work = gapWaiters.shift();
        if (work) {
            window.requestAnimationFrame(function () {
                setTimeout(work, 0);
            });
        }
    }

    var pendingTexts = null;  // readings and info of the newest answer, applied in the next gap

    function applyImage(id, props, frame) {
        var set = window.dash_clientside.set_props;
        if (props.figure === undefined) {
            // Texts wait for the gap after the frame: they cost dash-renderer a re-index each.
            if (!pendingTexts) {
                pendingTexts = {};
                afterFrame(function () {
                    var texts = pendingTexts;
                    pendingTexts = null;
                    Object.keys(texts).forEach(function (key) {
                        set(key, texts[key]);
                    });
                });
            }
            pendingTexts[id] = props;
            return;
        }
        var base = id === IMAGE_GRAPH && live.figure ? live.figure : storeProp(id, "figure");
        var figure = patched(base, props.figure);
        if (!figure) {
            return;
        }
        if (id !== IMAGE_GRAPH) {
            set(id, {figure: figure});
            return;
        }
        live.figure = figure;
        live.newest = frame;
        if (live.enabled && live.pending && performance.now() - live.pending.at < PENDING_MS) {
            // plotly.js is still drawing an earlier answer: when it is done, the layer paints this
            // one (afterPlot), or plotly.js draws again if more than the frame changed.
            live.dirty = live.dirty || !frameOnly(props.figure);
            return;
        }
        if (!liveDraw(figure, props.figure, frame)) {
            fullDraw(figure, frame);
            return;
        }
        var refresh = FULL_REFRESH_MS[live.pointer ? "hover" : "idle"];
        if (performance.now() - live.fullAt > refresh && !live.refreshing) {
            // plotly.js redraws (hover values, dash-renderer's copy) in a gap, not in a frame's way.
            live.refreshing = true;
            afterFrame(function () {
                live.refreshing = false;
                if (!live.pending) {
                    live.reasons.refresh = (live.reasons.refresh || 0) + 1;
                    fullDraw(live.figure, null);
                }
            });
        }
    }

    function storeAnswered(name, data) {
        // An answer that came through dash-renderer (a settings change, or no direct path): it is
        // the newest state; answers of direct requests still on their way are dropped.
        var loop = loops[name];
        loop.generation += 1;
        loop.last = data;
        answered(name);
    }

    // ------------------------------------------------------------------------------ live layer
    //
    // plotly.js redraws the whole figure for every new z: defaults, axes, colour bar, the heatmap's
    // colour mapping and a PNG encode, 45-60 ms of main-thread time per frame here, plus dash-renderer's
    // bookkeeping when the figure goes through set_props. Between two such redraws only the pixels and
    // the profiles change, so they are painted into a canvas laid exactly over the plot areas of
    // #image-graph, with the colour scale, axes and geometry plotly.js computed at its last redraw
    // (about 2 ms per frame). plotly.js still draws the figure whenever anything else changes (zoom,
    // colour map, colour range, size, the STALE mark) and at least every FULL_REFRESH_MS, so the
    // colour bar, hover values and dash-renderer's copy of the figure stay current; the canvas is
    // hidden from the moment the axes move until plotly.js has drawn the new geometry. `?draw=plotly`
    // turns the layer off (every frame through plotly.js; the benchmark compares both).

    var IMAGE_GRAPH = "image-graph";
    // plotly.js redraws the frame at least this often, so hover values (read from plotly's data)
    // are at most this old while the pointer is over the image; otherwise the layer draws on.
    var FULL_REFRESH_MS = {hover: 1000, idle: 10000};
    var PENDING_MS = 1000;  // a plotly.js redraw not finished after this is not waited for any more
    // Patch locations a frame may change while the layer draws it; anything else needs plotly.js.
    var LIVE_KEYS = {"data.0.z": 1, "data.0.x0": 1, "data.0.dx": 1, "data.0.y0": 1, "data.0.dy": 1,
                     "data.1.y": 1, "data.2.x": 1};
    var live = {
        enabled: !/[?&]draw=plotly(&|$)/.test(window.location.search),
        figure: null,  // the newest figure, patched here (dash-renderer's copy lags while the layer draws)
        gd: null,
        layer: null,  // the live layer: clip box, image canvas (one pixel per bin), profile canvases
        clip: null,
        canvas: null,
        profiles: null,
        arranged: null,  // the geometry the pieces are placed for
        geometry: null,  // what plotly.js drew last: axes, plot areas, bins, colour scale
        lut: null,
        lutKey: null,
        fullAt: -Infinity,
        pending: null,  // {frame, at}: a redraw handed to plotly.js, its frame announced when drawn
        newest: null,  // the frame of `figure`
        dirty: false,  // an answer that needs plotly.js arrived while it was drawing
        refreshing: false,  // a periodic plotly.js redraw is waiting for a gap
        pointer: false,  // the pointer is over the graph (hover values wanted)
        frames: 0,  // frames painted by the layer (tests read it)
        reasons: {}  // why other frames were handed to plotly.js
    };

    function announce(gd, frame, path) {
        // One event per frame on screen, whichever way it got there (benchmark and tests listen).
        if (frame && gd) {
            gd.dispatchEvent(new window.CustomEvent("sov-frame", {bubbles: true, detail: {
                seq: frame.seq, pulse_id: frame.pulse_id, timestamp: frame.timestamp, received: frame.received,
                path: path}}));
        }
    }

    function graphDiv() {
        var gd = document.querySelector("#" + IMAGE_GRAPH + " .js-plotly-plot");
        if (gd && gd !== live.gd && typeof gd.on === "function") {
            live.gd = gd;
            live.geometry = null;
            gd.on("plotly_afterplot", afterPlot);
            gd.on("plotly_relayouting", hideLive);  // a zoom or pan in progress moves the axes
            gd.on("plotly_relayout", hideLive);
            gd.addEventListener("pointerenter", function () { live.pointer = true; });
            gd.addEventListener("pointerleave", function () { live.pointer = false; });
        }
        return live.gd;
    }

    function fullDraw(figure, frame) {
        // The canvas stays up until plotly.js has drawn: hiding it first would flash plotly's own
        // picture of its last redraw, up to FULL_REFRESH_MS old.
        graphDiv();
        live.geometry = null;
        live.dirty = false;
        live.pending = {frame: frame || null, at: performance.now()};
        live.fullAt = performance.now();
        window.dash_clientside.set_props(IMAGE_GRAPH, {figure: figure});
    }

    function hideLive() {
        live.geometry = null;
        if (live.layer) {
            live.layer.style.visibility = "hidden";
        }
        var outer = document.getElementById(IMAGE_GRAPH);
        if (outer) {
            outer.classList.remove("sov-live");
        }
    }

    function afterPlot() {
        var gd = live.gd;
        var frame = live.pending ? live.pending.frame : null;
        live.pending = null;
        live.geometry = live.enabled ? measure(gd) : null;
        var data = gd.data, path = "plotly";
        var newest = live.figure && live.figure.data;
        if (live.geometry && newest && newest !== gd.data && sameGeometry(newest, live.geometry)) {
            // Answers that arrived while plotly.js was drawing: the newest goes on screen now.
            data = newest;
            frame = live.newest;
            path = "live";
        }
        if (!live.geometry || !paint(gd, data, live.geometry)) {
            hideLive();
        }
        announce(gd, frame, path);
        if (live.enabled && newest && (live.dirty || (newest !== gd.data && !sameGeometry(newest, live.geometry)))) {
            live.reasons["changed while drawing"] = (live.reasons["changed while drawing"] || 0) + 1;
            fullDraw(live.figure, live.newest);
        }
    }

    function sameGeometry(data, geometry) {
        var heatmap = data[0], shape = zShape(heatmap && heatmap.z);
        return !!(geometry && shape && heatmap.x0 === geometry.x0 && heatmap.dx === geometry.dx &&
                  heatmap.y0 === geometry.y0 && heatmap.dy === geometry.dy && shape.rows === geometry.rows &&
                  shape.cols === geometry.cols);
    }

    function frameOnly(update) {
        // True if a figure update changes nothing but the frame (what the live layer can paint).
        if (!update || !update.__dash_patch_update) {
            return false;
        }
        return update.operations.every(liveOperation);
    }

    function liveOperation(op) {
        // True if one Patch operation only changes the frame.
        return op.operation === "Assign" && !!LIVE_KEYS[op.location.join(".")];
    }

    function measure(gd) {
        // The geometry plotly.js has just drawn, or null if the layer cannot reproduce it.
        var fl = gd && gd._fullLayout;
        var trace = gd && gd._fullData && gd._fullData[0];
        var data = gd && gd.data && gd.data[0];
        if (!fl || !trace || !data || !fl.xaxis || !fl.yaxis || !fl.xaxis2 || !fl.yaxis2 || !fl.xaxis.l2p) {
            return null;
        }
        var shape = zShape(data.z);
        if (!shape || shape.rows < 1 || shape.cols < 1 || !Array.isArray(trace.colorscale)) {
            return null;
        }
        return {
            width: fl.width, height: fl.height,
            xa: fl.xaxis, ya: fl.yaxis, xa2: fl.xaxis2, ya2: fl.yaxis2,
            xrange: fl.xaxis.range.slice(), yrange: fl.yaxis.range.slice(),
            x0: data.x0, dx: data.dx, y0: data.y0, dy: data.dy, rows: shape.rows, cols: shape.cols,
            zmin: trace.zmin, zmax: trace.zmax, colorscale: trace.colorscale,
            lineColor: (gd._fullData[1] && gd._fullData[1].line && gd._fullData[1].line.color) || "#f39c12",
            lineWidth: (gd._fullData[1] && gd._fullData[1].line && gd._fullData[1].line.width) || 1
        };
    }

    function zShape(z) {
        if (!z || typeof z.bdata !== "string" || z.dtype !== "u1" || typeof z.shape !== "string") {
            return null;
        }
        var dims = z.shape.split(",").map(Number);
        return dims.length === 2 ? {rows: dims[0], cols: dims[1]} : null;
    }

    function decode(spec, Type) {
        // A plotly.js typed-array spec ({dtype, bdata}) as a typed array.
        var text = window.atob(spec.bdata);
        var bytes = new Uint8Array(text.length);
        for (var i = 0; i < text.length; i++) {
            bytes[i] = text.charCodeAt(i);
        }
        return Type === Uint8Array ? bytes : new Type(bytes.buffer, 0, bytes.length / Type.BYTES_PER_ELEMENT);
    }

    function typed(spec) {
        if (!spec || typeof spec.bdata !== "string") {
            return null;
        }
        var Type = {f4: Float32Array, f8: Float64Array, u1: Uint8Array, u2: Uint16Array, i4: Int32Array}[spec.dtype];
        return Type ? decode(spec, Type) : null;
    }

    function colourTable(geometry) {
        // 256 RGBA colours (as little-endian uint32) for levels 0..255: the colour scale plotly.js
        // resolved, interpolated linearly between its stops over [zmin, zmax], as plotly.js does.
        var key = JSON.stringify([geometry.colorscale, geometry.zmin, geometry.zmax]);
        if (live.lutKey === key) {
            return live.lut;
        }
        var probe = document.createElement("canvas").getContext("2d", {willReadFrequently: true});
        var stops = geometry.colorscale.map(function (stop) {
            probe.fillStyle = "#000";
            probe.fillStyle = stop[1];
            probe.fillRect(0, 0, 1, 1);
            var px = probe.getImageData(0, 0, 1, 1).data;
            return [Number(stop[0]), px[0], px[1], px[2]];
        });
        var lut = new Uint32Array(256);
        var span = geometry.zmax - geometry.zmin || 1;
        for (var level = 0; level < 256; level++) {
            var t = Math.min(1, Math.max(0, (level - geometry.zmin) / span));
            var j = 1;
            while (j < stops.length - 1 && stops[j][0] < t) {
                j++;
            }
            var a = stops[j - 1], b = stops[Math.min(j, stops.length - 1)];
            var f = b[0] > a[0] ? (t - a[0]) / (b[0] - a[0]) : 0;
            var rgb = [1, 2, 3].map(function (c) {
                return Math.round(a[c] + (b[c] - a[c]) * f);
            });
            lut[level] = (255 << 24 | rgb[2] << 16 | rgb[1] << 8 | rgb[0]) >>> 0;
        }
        live.lut = lut;
        live.lutKey = key;
        return lut;
    }

    function element(tag, parent, style) {
        var node = document.createElement(tag);
        Object.assign(node.style, {position: "absolute", left: "0", top: "0"}, style || {});
        if (parent) {
            parent.appendChild(node);
        }
        return node;
    }

    function liveLayer(gd) {
        // Above plotly's plot layer, under its hover and zoom layers: a box clipped to the image's
        // plot area holding a canvas of one pixel per bin (the compositor scales it to the bins' size
        // on screen, so a frame costs a few hundred kB of pixels, not the graph's area), and one small
        // canvas per profile panel.
        var container = gd.querySelector(".svg-container");
        var plotSvg = container && container.querySelector("svg.main-svg");
        if (!plotSvg) {
            return null;
        }
        var layer = live.layer;
        if (!layer) {
            layer = live.layer = element("div", null, {pointerEvents: "none", overflow: "visible"});
            layer.className = "sov-live-layer";
            live.clip = element("div", layer, {overflow: "hidden"});
            live.canvas = element("canvas", live.clip, {imageRendering: "pixelated", willChange: "transform"});
            live.profiles = [element("canvas", layer), element("canvas", layer)];
        }
        if (layer.parentNode !== container || layer.previousSibling !== plotSvg) {
            container.insertBefore(layer, plotSvg.nextSibling);
        }
        return layer;
    }

    function place(node, box) {
        node.style.left = box.left + "px";
        node.style.top = box.top + "px";
        node.style.width = box.width + "px";
        node.style.height = box.height + "px";
    }

    function panel(xa, ya) {
        return {left: xa._offset, top: ya._offset, width: xa._length, height: ya._length};
    }

    function arrange(geometry) {
        // Place the layer's pieces for `geometry` (once per plotly.js redraw).
        var xa = geometry.xa, ya = geometry.ya;
        var ratio = window.devicePixelRatio || 1;
        // The image: bin edges through the axes' own data-to-pixel maps, relative to the plot area.
        var x1 = xa.l2p(geometry.x0 - geometry.dx / 2), x2 = xa.l2p(geometry.x0 + (geometry.cols - 0.5) * geometry.dx);
        var y1 = ya.l2p(geometry.y0 - geometry.dy / 2), y2 = ya.l2p(geometry.y0 + (geometry.rows - 0.5) * geometry.dy);
        geometry.image = {left: Math.min(x1, x2), top: Math.min(y1, y2), width: Math.abs(x2 - x1),
                          height: Math.abs(y2 - y1)};
        place(live.clip, panel(xa, ya));
        place(live.canvas, geometry.image);
        if (live.canvas.width !== geometry.cols || live.canvas.height !== geometry.rows) {
            live.canvas.width = geometry.cols;
            live.canvas.height = geometry.rows;
        }
        geometry.panels = [panel(xa, geometry.ya2), panel(geometry.xa2, ya)];
        geometry.panels.forEach(function (box, k) {
            var canvas = live.profiles[k];
            place(canvas, box);
            canvas.width = Math.max(1, Math.round(box.width * ratio));
            canvas.height = Math.max(1, Math.round(box.height * ratio));
        });
        live.arranged = geometry;
    }

    function paint(gd, data, geometry) {
        // Paint one frame (figure data: heatmap, x profile, y profile) with `geometry`. True if drawn.
        var shape = zShape(data[0] && data[0].z);
        if (!shape || shape.rows !== geometry.rows || shape.cols !== geometry.cols || !liveLayer(gd)) {
            return false;
        }
        var levels = decode(data[0].z, Uint8Array);
        if (levels.length !== shape.rows * shape.cols) {
            return false;
        }
        if (live.arranged !== geometry) {
            arrange(geometry);
        }
        var lut = colourTable(geometry);
        var ctx = live.canvas.getContext("2d");
        var pixels = ctx.createImageData(shape.cols, shape.rows);
        var out = new Uint32Array(pixels.data.buffer);
        for (var i = 0; i < levels.length; i++) {
            out[i] = lut[levels[i]];
        }
        ctx.putImageData(pixels, 0, 0);
        // Profiles, each scaled to its own panel as plotly's autorange would.
        var xa = geometry.xa, ya = geometry.ya;
        profile(live.profiles[0], geometry, typed(data[1] && data[1].y), geometry.x0, geometry.dx,
                function (x) { return xa.l2p(x); }, false);
        profile(live.profiles[1], geometry, typed(data[2] && data[2].x), geometry.y0, geometry.dy,
                function (y) { return ya.l2p(y); }, true);
        live.layer.style.visibility = "visible";
        document.getElementById(IMAGE_GRAPH).classList.add("sov-live");
        live.frames += 1;
        return true;
    }

    function profile(canvas, geometry, values, start, step, along, vertical) {
        // One profile line in its panel's canvas: `along` maps the position on the image axis to
        // pixels of the panel (the image's own axis), the value spans the panel's other direction.
        var ctx = canvas.getContext("2d");
        var ratio = window.devicePixelRatio || 1;
        ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        if (!values || values.length < 2) {
            return;
        }
        var min = Infinity, max = -Infinity;
        for (var i = 0; i < values.length; i++) {
            var v = values[i];
            if (v < min) { min = v; }
            if (v > max) { max = v; }
        }
        if (!isFinite(min) || !isFinite(max)) {
            return;
        }
        var pad = (max - min) * 0.05 || 1;
        min -= pad;
        max += pad;
        var size = canvas.width / ratio, depth = canvas.height / ratio;
        ctx.strokeStyle = geometry.lineColor;
        ctx.lineWidth = geometry.lineWidth;
        ctx.beginPath();
        for (var k = 0; k < values.length; k++) {
            var a = along(start + k * step);
            var f = (values[k] - min) / (max - min);
            if (vertical) {  // value grows to the right
                ctx[k ? "lineTo" : "moveTo"](f * size, a);
            } else {  // value grows upwards
                ctx[k ? "lineTo" : "moveTo"](a, depth - f * depth);
            }
        }
        ctx.stroke();
    }

    function redraw(reason) {
        // Counts why frames went through plotly.js (benchmark and tests read it); always false.
        live.reasons[reason] = (live.reasons[reason] || 0) + 1;
        return false;
    }

    function liveDraw(figure, update, frame) {
        // Paint this answer with the layer if only the frame changed since plotly.js last drew.
        var gd = graphDiv();
        var geometry = live.geometry;
        if (!live.enabled || !gd || !geometry || !update || !update.__dash_patch_update) {
            return redraw(!live.enabled ? "off" : !geometry ? "not measured" : "whole figure");
        }
        var other = update.operations.filter(function (op) { return !liveOperation(op); })[0];
        if (other) {
            return redraw(other.location.join("."));
        }
        var fl = gd._fullLayout;
        if (!sameGeometry(figure.data, geometry) || !fl || fl.width !== geometry.width || fl.height !== geometry.height ||
                fl.xaxis !== geometry.xa || fl.yaxis !== geometry.ya ||
                String(fl.xaxis.range) !== String(geometry.xrange) ||
                String(fl.yaxis.range) !== String(geometry.yrange)) {
            return redraw("geometry");
        }
        if (!paint(gd, figure.data, geometry)) {
            return redraw("not painted");
        }
        announce(gd, frame, "live");
        return true;
    }

    live.gapWork = function () {  // pieces of work still waiting for a gap (tests: is the page settled?)
        return gapWaiters.length;
    };
    window.streamViewerLive = live;  // for the browser benchmark and tests

    window.streamViewerLoops = loops;  // for the browser benchmark and tests

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        viewer: {
            imageAnswered: function (data) {
                storeAnswered("image", data);
                return window.dash_clientside.no_update;
            },
            historyAnswered: function (data) {
                storeAnswered("history", data);
                return window.dash_clientside.no_update;
            },
            watchdog: function (nIntervals, config, paused) {
                state.config = config || state.config;
                state.paused = !!paused;
                var now = performance.now();
                Object.keys(loops).forEach(function (name) {
                    var loop = loops[name];
                    var idle = !loop.pending && loop.timer === null;
                    var stuck = loop.pending && now - loop.sentAt > STUCK_MS;
                    if (idle || stuck) {
                        send(name);
                    }
                });
                return window.dash_clientside.no_update;
            },
            pause: function (nClicks, paused) {
                var next = nClicks ? !paused : !!paused;
                state.paused = next;
                if (!next) {
                    kick();  // resume catches up at once
                }
                return [next, next ? "Resume" : "Pause", next ? "success" : "warning"];
            },
            viewFromRelayout: function (relayout, current) {
                // Keep only the zoom region of the image axes; autorange resets it.
                var view = Object.assign({}, current || {});
                if (!relayout) {
                    return view;
                }
                ["x", "y"].forEach(function (axis) {
                    var key = axis + "axis";
                    if (relayout[key + ".autorange"] || relayout["autosize"]) {
                        view[axis] = null;
                    }
                    if (relayout[key + ".range[0]"] !== undefined && relayout[key + ".range[1]"] !== undefined) {
                        view[axis] = [relayout[key + ".range[0]"], relayout[key + ".range[1]"]];
                    } else if (Array.isArray(relayout[key + ".range"])) {
                        view[axis] = relayout[key + ".range"].slice(0, 2);
                    }
                });
                return view;
            },
            settings: function (colormap, scale, rangeMode, zmin, zmax) {
                return {colormap: colormap, scale: scale, range_mode: rangeMode, zmin: zmin, zmax: zmax};
            }
        }
    });
})();
