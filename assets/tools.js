/*
 * Operator tools in the page: the histogram of the frame on screen (its own small plotly plot; a
 * drag across it sets the manual colour range) and the PNG snapshot of the picture as shown
 * (drawn by plotly.js from the frame itself, with camera, pulse id and UTC time printed on it).
 */
(function () {
    "use strict";
    var sov = window.sov = window.sov || {};
    var HISTOGRAM_MS = 500;
    var state = {at: 0, div: null, bound: null};

    function setProps(id, props) {
        window.dash_clientside.set_props(id, props);
    }

    sov.histogram = {
        frame: function (frame) {
            var p = sov.painter, div = document.getElementById("histogram-plot"), now = performance.now();
            if (!div || !window.Plotly || !p.config || !p.config.toolsOpen || div.offsetParent === null ||
                    (now - state.at < HISTOGRAM_MS && !p.paused)) {
                return;
            }
            state.at = now;
            var meta = frame.meta, h = meta.histogram, counts = frame.parts.histogram;
            var width = (h.hi - h.lo) / h.bins, x = [];
            for (var i = 0; i < h.bins; i++) {
                x.push(h.lo + (i + 0.5) * width);
            }
            var line = function (v) {
                return {type: "line", xref: "x", yref: "paper", x0: v, x1: v, y0: 0, y1: 1,
                        line: {color: "#f39c12", width: 1.5}};
            };
            var layout = {margin: {l: 34, r: 4, t: 4, b: 22}, height: 110, width: 260, dragmode: "select",
                          selectdirection: "h", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
                          font: {color: "#ccc", size: 9}, bargap: 0, showlegend: false,
                          xaxis: {title: {text: ""}, nticks: 4}, yaxis: {type: p.config.histogramLog ? "log" : "linear",
                                                                         nticks: 3},
                          shapes: [line(meta.range[0]), line(meta.range[1])]};
            window.Plotly.react(div, [{type: "bar", x: x, y: Array.from(counts), marker: {color: "#5dade2"},
                                       hoverinfo: "x+y"}], layout, {displayModeBar: false});
            if (state.bound !== div && typeof div.on === "function") {
                state.bound = div;
                div.on("plotly_selected", function (event) {
                    var range = event && event.range && event.range.x;
                    if (range && range[1] > range[0]) {
                        setProps("image-range-mode", {value: "manual"});
                        setProps("image-range-min", {value: Number(range[0].toPrecision(6))});
                        setProps("image-range-max", {value: Number(range[1].toPrecision(6))});
                    }
                });
            }
        }
    };

    function utc(epoch) {
        return new Date(epoch * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    }

    sov.snapshotPng = function () {
        var p = sov.painter, gd = p.gd, frame = p.frame;
        if (!gd || !frame || !window.Plotly) {
            return;
        }
        var meta = frame.meta, t = sov.plotlyTraces(frame);
        var data = JSON.parse(JSON.stringify(gd.data));
        Object.assign(data[0], t.heatmap);
        Object.assign(data[1], t.profileX);
        Object.assign(data[2], t.profileY);
        var layout = JSON.parse(JSON.stringify(gd.layout));
        var text = meta.camera + " · pulse " + meta.pulse_id + " · " + utc(meta.timestamp) + " UTC";
        layout.paper_bgcolor = "#272b30";
        layout.plot_bgcolor = "#272b30";
        layout.margin = Object.assign({}, layout.margin, {t: 28});
        layout.annotations = (layout.annotations || []).concat([{text: text.replace(/</g, "&lt;"), xref: "paper",
            yref: "paper", x: 0, y: 1, yshift: 24, xanchor: "left", yanchor: "bottom", showarrow: false,
            font: {color: "#eee", size: 13}}]);
        var name = (meta.camera + "_pulse" + meta.pulse_id + "_" + utc(meta.timestamp).replace(/[-:]/g, ""))
            .replace(/[^A-Za-z0-9_.+-]/g, "_") + ".png";
        window.Plotly.toImage({data: data, layout: layout}, {format: "png", width: gd.clientWidth,
                                                             height: gd.clientHeight + 20}).then(function (url) {
            var link = document.createElement("a");
            link.href = url;
            link.download = name;
            document.body.appendChild(link);
            link.click();
            link.remove();
        });
    };
})();
