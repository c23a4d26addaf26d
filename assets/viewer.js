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
 * The image loop posts its request to the image callback itself and hands the answer to the
 * graph with one set_props: going through dash-renderer's callback machinery (queues, loading
 * states, a re-index of the layout for every output and the answer's own callback) cost about as
 * much main-thread time per frame as plotly.js drawing the heatmap. The server side is the same
 * Dash callback either way; if this path is unavailable the loop falls back to the store.
 */
(function () {
    "use strict";

    var loops = {
        image: {store: "image-request", response: "image-response", n: 0, sentAt: 0, pending: false, timer: null},
        history: {store: "history-request", response: "history-response", n: 0, sentAt: 0, pending: false, timer: null}
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

    function send(name) {
        var loop = loops[name];
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
        if (name === "image" && !direct.failed && window.store && window.fetch) {
            fetchImage(loop, data);
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
        var wait = Math.max(0, period(name) - (performance.now() - loop.sentAt));
        loop.timer = setTimeout(function () {
            loop.timer = null;
            send(name);
        }, wait);
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

    // ----------------------------------------------------------------- direct image requests

    var direct = {spec: null, failed: false, applied: 0};

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

    function imageSpec() {
        // The image callback's outputs and states, from the app itself (never a stale copy).
        if (direct.spec) {
            return Promise.resolve(direct.spec);
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
                return !d.clientside_function && d.inputs.length && d.inputs[0].id === loops.image.store;
            })[0];
            if (!dep || dep.output.indexOf("..") !== 0) {
                throw new Error("no image callback");
            }
            var outputs = dep.output.slice(2, -2).split("...").map(function (item) {
                var dot = item.lastIndexOf(".");
                return {id: item.slice(0, dot), property: item.slice(dot + 1)};
            });
            direct.spec = {url: prefix + "_dash-update-component", dep: dep, outputs: outputs};
            return direct.spec;
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

    function fetchImage(loop, data) {
        var n = data.n;
        imageSpec().then(function (spec) {
            var values = {};
            values[loop.response + ".data"] = loop.last === undefined ? null : loop.last;
            var body = {
                output: spec.dep.output,
                outputs: spec.outputs,
                inputs: [{id: loop.store, property: "data", value: data}],
                state: spec.dep.state.map(function (s) {
                    var key = s.id + "." + s.property;
                    return {id: s.id, property: s.property,
                            value: key in values ? values[key] : storeProp(s.id, s.property)};
                }),
                changedPropIds: [loop.store + ".data"]
            };
            return fetch(spec.url, {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(body)});
        }).then(function (reply) {
            if (reply.status === 204) {
                return {};
            }
            if (!reply.ok) {
                throw new Error("image callback: HTTP " + reply.status);
            }
            return reply.json();
        }).then(function (answer) {
            var response = answer.response || {};
            if (n > direct.applied) {  // an answer overtaken by a newer one is dropped
                direct.applied = n;
                var set = window.dash_clientside.set_props;
                Object.keys(response).forEach(function (id) {
                    var props = response[id];
                    if (id === loop.response) {
                        loop.last = props.data;
                    } else if (props.figure !== undefined) {
                        var figure = patched(storeProp(id, "figure"), props.figure);
                        if (figure) {
                            set(id, {figure: figure});
                        }
                    } else {
                        set(id, props);
                    }
                });
            }
            answered("image");
        }).catch(function (error) {
            if (!direct.spec) {
                direct.failed = true;  // no dependencies: use dash-renderer from now on
            }
            if (window.console) {
                window.console.warn("image request failed:", error);
            }
            answered("image");
        });
    }

    window.streamViewerLoops = loops;  // for the browser benchmark and tests

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        viewer: {
            imageAnswered: function () {
                answered("image");
                return window.dash_clientside.no_update;
            },
            historyAnswered: function () {
                answered("history");
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
