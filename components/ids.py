"""Every component id of the page. Ids marked (contract) are used by tests and operators' scripts."""

# Header
STREAM_LABEL = "stream-label"
STREAM_STATE = "stream-state"  # (contract) badge: live / stalled / waiting
STREAM_RATE = "stream-rate"
SIMULATED_BADGE = "simulated-badge"

# Detector image
IMAGE_GRAPH = "image-graph"  # (contract)
IMAGE_REQUEST = "image-request"  # store the browser's frame loop writes to ask for the next frame
IMAGE_RESPONSE = "image-response"  # store the server answers into; the loop schedules the next request
IMAGE_VIEW = "image-view"  # store: zoom region of the image axes
IMAGE_SETTINGS = "image-settings"  # store: colour map, scale, range
IMAGE_LOOP_SINK = "image-loop-sink"  # clientside callbacks need an output; these stores take it
HISTORY_LOOP_SINK = "history-loop-sink"
WATCHDOG_SINK = "watchdog-sink"
IMAGE_INFO = "image-info"
COLORMAP = "image-colormap"
SCALE = "image-scale"
RANGE_MODE = "image-range-mode"
RANGE_MIN = "image-range-min"
RANGE_MAX = "image-range-max"
PAUSE_BUTTON = "pause-button"
PAUSED = "paused-store"
WATCHDOG = "loop-watchdog"
CONFIG = "client-config"

# Readings
BEAM_ENERGY = "beam-energy-value"  # (contract) GeV
REPETITION_RATE = "repetition-rate-value"  # (contract) Hz
PULSE_ID = "pulse-id-value"  # (contract)
TIMESTAMP = "timestamp-value"
IMAGE_SIZE = "image-size-value"
CENTROID = "centroid-value"
RMS_SIZE = "rms-size-value"

# History
ENERGY_HISTORY = "energy-history-graph"  # (contract)
RATE_HISTORY = "rate-history-graph"  # (contract)
BEAM_HISTORY = "beam-history-graph"
CHANNEL_HISTORY = "channel-history-graph"
CHANNEL_SELECT = "history-channel-select"
HISTORY_WINDOW = "history-window"
HISTORY_XAXIS = "history-xaxis"
HISTORY_REQUEST = "history-request"
HISTORY_RESPONSE = "history-response"
HISTORY_STATS = "history-stats"

# Export
EXPORT_BUTTON = "export-csv-button"  # (contract)
EXPORT_DOWNLOAD = "export-csv-download"

# Health
HEALTH_PANEL = "health-panel"
HEALTH_INTERVAL = "health-interval"
