//! dcgm-exporter specifics: blank sentinel values and the host label's two spellings.

use crate::Labels;

/// `DCGM_INT64_BLANK` (0x7ffffffffffffff0); the NOT_FOUND, NOT_SUPPORTED and NOT_PERMISSIONED
/// sentinels follow it (older exporters print e.g. 9223372036854775794). As an f64 they all
/// round to 2^63, so any value at or above 9.2e18 is taken as blank.
const INT64_BLANK_FROM: f64 = 9.2e18;
/// `DCGM_FP64_BLANK` (2^47) and the three sentinels after it.
const FP64_BLANK: f64 = 140_737_488_355_328.0;
/// `DCGM_INT32_BLANK` (0x7ffffff0) and the three sentinels after it.
const INT32_BLANK: f64 = 2_147_483_632.0;

/// Whether `value` is one of DCGM's "blank" sentinels (no data, not found, not supported, not
/// permitted) rather than a reading. The FP64 and INT32 sentinels are matched exactly (blank to
/// blank + 3), since real int64 counters (energy in mJ, bytes) can legitimately pass 2^31 and 2^47.
/// NaN and infinities are not sentinels.
#[must_use]
pub fn is_blank(value: f64) -> bool {
    (value >= INT64_BLANK_FROM && value.is_finite())
        || (FP64_BLANK..=FP64_BLANK + 3.0).contains(&value)
        || (INT32_BLANK..=INT32_BLANK + 3.0).contains(&value)
}

/// The node name: `Hostname` in exporters up to 4.8.2, lower-case `hostname` after
/// NVIDIA/dcgm-exporter PR #655. `Hostname` wins when both are present.
#[must_use]
pub fn hostname<'a>(labels: &'a Labels<'_>) -> Option<&'a str> {
    labels.get("Hostname").or_else(|| labels.get("hostname"))
}
