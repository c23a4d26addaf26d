"""Every component id of the page. Ids marked (contract) are used by tests and operators' scripts."""

# Page
LOCATION = "page-location"  # dcc.Location: ?camera=NAME
CONFIG = "client-config"  # store: display period, the painter's settings that never change

# Header
STREAM_LABEL = "stream-label"
STREAM_STATE = "stream-state"  # (contract) badge: live / stalled / waiting / connecting / error
STREAM_RATE = "stream-rate"
SIMULATED_BADGE = "simulated-badge"
CAMERA_SELECT = "camera-select"  # (contract) dropdown of the cameras
CAMERA_MESSAGE = "camera-message"  # why a camera cannot be shown (cam_server unreachable, ...)
HEALTH_LINE = "health-line"  # compact health summary in the header
HEALTH_TOGGLE = "health-toggle"
HEALTH_DETAILS = "health-details"  # collapse with the full health table
HEALTH_PANEL = "health-panel"  # table body of the full health details
HEALTH_INTERVAL = "health-interval"
PARAMETERS = "processing-parameters"  # cam_server's processing_parameters, as text
PARAMETERS_DIGEST = "processing-parameters-digest"  # store: digest of the text shown (what the tick compares)

# Detector image
IMAGE_PANEL = "image-panel"  # the image card (full-screen toggles it)
IMAGE_GRAPH = "image-graph"  # (contract) plotly heatmap with axes, colour bar, profiles
IMAGE_CANVAS = "image-canvas"  # the painter's canvases, under the (transparent) graph (assets/canvas.js)
IMAGE_OVERLAY = "image-overlay"  # the painter's texts over the graph (assets/overlay.js)
IMAGE_GEOMETRY = "image-geometry"  # store: image shape, axes, units, ROI version (figure rebuilt on change)
IMAGE_REQUEST = "image-request"  # store: the painter's settings (camera, processing, saturation, crosshair)
IMAGE_RESPONSE = "image-response"  # store: the frame on screen, published by the painter (seq, pulse id, paused)
IMAGE_VIEW = "image-view"  # store: zoom region of the image axes (from relayoutData)
IMAGE_SETTINGS = "image-settings"  # store: colour map, scale, range
IMAGE_LOOP_SINK = "image-loop-sink"  # clientside callbacks need an output; these stores take it
WATCHDOG_SINK = "watchdog-sink"
WATCHDOG = "loop-watchdog"  # 1 s interval: restarts a stuck frame loop
IMAGE_INFO = "image-info"
COLORMAP = "image-colormap"
SCALE = "image-scale"
RANGE_MODE = "image-range-mode"
RANGE_MIN = "image-range-min"
RANGE_MAX = "image-range-max"
RANGE_MESSAGE = "image-range-message"  # why a manual range is refused
PAUSE_BUTTON = "pause-button"
PAUSED = "paused-store"
FULLSCREEN_BUTTON = "fullscreen-button"
FRAME_SLIDER = "frame-slider"  # a paused page steps through the kept frames
FRAME_LABEL = "frame-label"
CROSSHAIR = "crosshair-switch"

# Operator tools (folded under the image toolbar)
TOOLS_BUTTON = "tools-button"
TOOLS = "tools-collapse"
TOOLS_INTERVAL = "tools-interval"  # refreshes the tools (background state, regions) while they are shown
AVERAGE = "average-frames"
BACKGROUND_FRAMES = "background-frames"
BACKGROUND_GRAB = "background-grab-button"
BACKGROUND_CLEAR = "background-clear-button"
BACKGROUND_SUBTRACT = "background-subtract-switch"
BACKGROUND_STATE = "background-state"
SATURATION = "saturation-switch"
SATURATION_LEVEL = "saturation-level"
ROI_NAME = "roi-name"
ROI_LIST = "roi-list"
ROI_CLEAR = "roi-clear-button"
ROI_MESSAGE = "roi-message"
ROI_VERSION = "roi-version"  # store: (camera, version) of the regions the list shows
HISTOGRAM = "histogram-plot"  # the painter's histogram of the frame on screen (its own plotly plot)
HISTOGRAM_LOG = "histogram-log-switch"
SNAPSHOT_PNG = "snapshot-png-button"
SNAPSHOT_H5 = "snapshot-h5-button"

# Readings
READINGS_INTERVAL = "readings-interval"
BEAM_ENERGY = "beam-energy-value"  # (contract) GeV
REPETITION_RATE = "repetition-rate-value"  # (contract) Hz
PULSE_ID = "pulse-id-value"  # (contract)
TIMESTAMP = "timestamp-value"
IMAGE_SIZE = "image-size-value"
CENTROID = "centroid-value"
RMS_SIZE = "rms-size-value"
FIT = "fit-value"  # our Gaussian fit
STREAM_STATISTICS = "stream-statistics-value"  # the stream's own statistics (cam_server), labelled
SATURATED = "saturated-value"
ROI_VALUES = "roi-values"

# History
ENERGY_HISTORY = "energy-history-graph"  # (contract)
RATE_HISTORY = "rate-history-graph"  # (contract)
BEAM_HISTORY = "beam-history-graph"
CHANNEL_HISTORY = "channel-history-graph"
CHANNEL_SELECT = "history-channel-select"
HISTORY_WINDOW = "history-window"
HISTORY_XAXIS = "history-xaxis"
HISTORY_REQUEST = "history-request"  # interval driving the history updates
HISTORY_RESPONSE = "history-response"  # store: what this browser's charts hold (cursor, buckets)
HISTORY_LOOP_SINK = "history-loop-sink"  # store: output of the snapshot buttons' clientside callbacks
HISTORY_STATS = "history-stats"
DETAILS_TOGGLE = "details-toggle"
DETAILS = "details-collapse"  # statistics table, processing parameters

# Export
EXPORT_BUTTON = "export-csv-button"  # (contract) a link to /api/readings.csv of the chosen window
