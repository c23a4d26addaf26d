/*
 * The page's clientside callbacks (window.dash_clientside.sov, registered in callbacks/*.py) and
 * what they drive: the painter's settings, pause with stepping through the kept frames, full
 * screen, keyboard shortcuts (space: pause, f: full screen, ←/→: step while paused), snapshots.
 * Dash components are changed only through dash_clientside.set_props.
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var NO = function () { return window.dash_clientside.no_update; };
    var held = {frames: [], index: 0, camera: null, touched: 0};
    var publishedAt = 0;

    function setProps(id, props) {
        if (window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props(id, props);
        }
    }

    sov.published = function (frame) {
        // The frame on screen, for the Dash side (IMAGE_RESPONSE, which the info line shows): at most
        // twice a second, or at once when paused (stepping).
        var p = sov.painter, now = performance.now();
        if (p.paused || now - publishedAt > 500) {
            publishedAt = now;
            var meta = frame.meta, stream = p.stream || {};
            setProps("image-response", {data: {camera: meta.camera, seq: meta.seq, pulse_id: meta.pulse_id,
                                               timestamp: meta.timestamp, paused: p.paused, shape: meta.shape,
                                               dtype: meta.dtype, bin: meta.bin, bytes: frame.parts.levels.length,
                                               age_s: typeof stream.age_s === "number" ? stream.age_s : null}});
        }
        if (sov.histogram) {
            sov.histogram.frame(frame);
        }
    };

    sov.info = function (shown) {
        // The info line under the picture, from the frame on screen (ages from the server's clock).
        if (!shown || !shown.shape) {
            return "";
        }
        var bins = shown.bin > 1 ? " · shown in " + shown.bin + " × " + shown.bin + " bins" : " · native pixels";
        var age = shown.paused ? " · paused" : (shown.age_s === null ? "" : " · last message " +
                                                 shown.age_s.toFixed(2) + " s ago");
        return shown.shape[1] + " × " + shown.shape[0] + " px " + shown.dtype + bins + " · " +
            Math.round(shown.bytes / 1024) + " KiB" + age;
    };

    // ------------------------------------------------------------------------------- pause

    function holdUrl(camera) {
        return "api/hold?camera=" + encodeURIComponent(camera || "") + "&client=" + sov.painter.client;
    }

    sov.setPaused = function (paused, camera) {
        // `camera`: the one whose frames are held (a camera switch releases the old camera's).
        var p = sov.painter;
        if (p.paused === paused) {
            return;
        }
        p.paused = paused;
        document.body.classList.toggle("sov-paused", paused);
        camera = camera || (p.config && p.config.camera) || "";
        var where = holdUrl(camera);
        if (!paused) {
            p.held = null;
            held.frames = [];
            held.camera = null;
            fetch(where, {method: "DELETE", credentials: "same-origin"}).catch(function () {});
            setProps("paused-store", {data: false});
            setProps("pause-button", {children: "Pause", color: "warning"});
            setProps("frame-label", {children: ""});
            p.restart();
            return;
        }
        held.camera = camera;
        held.touched = performance.now();
        var seq = p.frame ? p.frame.meta.seq : null;
        p.held = seq;
        fetch(where + (seq !== null ? "&seq=" + seq : ""), {method: "POST", credentials: "same-origin"})
            .then(function (reply) { return reply.json(); })
            .then(function (body) {
                held.frames = body.frames || [];
                held.index = Math.max(0, held.frames.length - 1);
                setProps("frame-slider", {min: 0, max: Math.max(0, held.frames.length - 1), value: held.index});
                label();
            }).catch(function () {});
        if (p.frame) {
            p.repaint();
        }
    };

    sov.keepHeld = function () {
        // A long pause: tell the server, every minute, that the held frames are still wanted.
        if (held.camera && performance.now() - held.touched > 60000) {
            held.touched = performance.now();
            fetch(holdUrl(held.camera) + "&touch=1", {method: "POST", credentials: "same-origin"}).catch(function () {});
        }
    };

    function label() {
        var frame = held.frames[held.index];
        setProps("frame-label", {children: frame ? "paused — pulse " + frame.pulse_id + " (" + (held.index + 1) +
            " of " + held.frames.length + " kept; ←/→ to step)" : ""});
    }

    sov.step = function (index) {
        var p = sov.painter;
        if (!p.paused || !held.frames.length) {
            return;
        }
        held.index = Math.max(0, Math.min(held.frames.length - 1, index));
        p.held = held.frames[held.index].seq;
        label();
        p.restart();
    };

    // ------------------------------------------------------------------------------ keys

    document.addEventListener("keydown", function (event) {
        var target = event.target, tag = target && target.tagName;
        if (event.ctrlKey || event.metaKey || event.altKey || tag === "INPUT" || tag === "TEXTAREA" ||
                tag === "SELECT" || (target && target.isContentEditable)) {
            return;
        }
        if (event.key === " ") {
            event.preventDefault();
            var button = document.getElementById("pause-button");
            if (button) {
                button.click();
            }
        } else if (event.key === "f" || event.key === "F") {
            sov.toggleFullscreen();
        } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && sov.painter.paused) {
            event.preventDefault();
            var index = held.index + (event.key === "ArrowLeft" ? -1 : 1);
            setProps("frame-slider", {value: Math.max(0, Math.min(held.frames.length - 1, index))});
        }
    });

    sov.toggleFullscreen = function () {
        var on = !document.body.classList.contains("sov-fullscreen");
        document.body.classList.toggle("sov-fullscreen", on);
        setProps("fullscreen-button", {active: on});
        window.dispatchEvent(new Event("resize"));  // plotly.js fits the graph to its new box
        return on;
    };

    // ----------------------------------------------------------------------- snapshots

    sov.snapshotH5 = function () {
        var p = sov.painter, meta = p.frame && p.frame.meta;
        if (!meta) {
            return;
        }
        var c = p.config || {};
        var link = document.createElement("a");
        link.href = "api/snapshot.h5?camera=" + encodeURIComponent(meta.camera) + "&seq=" + meta.seq + "&client=" +
            p.client + "&avg=" + (c.average || 1) + "&bg=" + (c.background ? 1 : 0);
        document.body.appendChild(link);
        link.click();
        link.remove();
    };

    // ------------------------------------------------------------ clientside callbacks

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        sov: {
            settings: function (colormap, scale, mode, zmin, zmax, refused) {
                return {colormap: colormap, scale: scale, manual: mode === "manual" && !refused && zmin !== null &&
                        zmax !== null && zmin !== undefined && zmax !== undefined, zmin: zmin, zmax: zmax};
            },
            request: function (camera, average, background, saturation, level, crosshair, histogramLog, toolsOpen) {
                var n = Number(average);
                return {camera: camera, average: isFinite(n) && n >= 1 ? Math.min(100, Math.round(n)) : 1,
                        background: !!background, saturation: !!saturation,
                        saturationLevel: level === null || level === undefined || level === "" ? null : Number(level),
                        crosshair: !!crosshair, histogramLog: !!histogramLog, toolsOpen: !!toolsOpen};
            },
            configure: function (request, settings, paused, config) {
                var p = sov.painter, camera = p.config && p.config.camera;
                if (request && camera !== undefined && camera !== request.camera) {
                    p.frame = null;  // another camera: nothing of the last one stays on screen
                    sov.setPaused(false, camera);  // its held frames are let go
                }
                p.config = request || p.config;
                p.settings = settings || p.settings;
                p.periodMs = (config && config.image_period_ms) || p.periodMs;
                if (request && settings) {
                    p.restart();
                }
                return NO();
            },
            watchdog: function () {
                sov.painter.watchdog();
                return NO();
            },
            step: function (value) {
                sov.step(Number(value) || 0);
                return NO();
            },
            pause: function (clicks, paused) {
                var next = clicks ? !paused : !!paused;
                sov.setPaused(next);
                return [next, next ? "Resume" : "Pause", next ? "success" : "warning"];
            },
            fullscreen: function () {
                return sov.toggleFullscreen();
            },
            info: function (shown) {
                return sov.info(shown);
            },
            snapshot: function () {
                var trigger = window.dash_clientside.callback_context.triggered_id;
                if (trigger === "snapshot-png-button") {
                    sov.snapshotPng();
                } else if (trigger === "snapshot-h5-button") {
                    sov.snapshotH5();
                }
                return NO();
            },
            viewFromRelayout: function (relayout, current) {
                // The zoom region of the image axes (autorange resets it), for whoever wants it.
                var view = Object.assign({}, current || {});
                if (!relayout) {
                    return view;
                }
                ["x", "y"].forEach(function (axis) {
                    var key = axis + "axis";
                    if (relayout[key + ".autorange"] || relayout.autosize) {
                        view[axis] = null;
                    }
                    if (relayout[key + ".range[0]"] !== undefined && relayout[key + ".range[1]"] !== undefined) {
                        view[axis] = [relayout[key + ".range[0]"], relayout[key + ".range[1]"]];
                    } else if (Array.isArray(relayout[key + ".range"])) {
                        view[axis] = relayout[key + ".range"].slice(0, 2);
                    }
                });
                return view;
            }
        }
    });
})();
