//! Properties: no input panics the parser, and every generated well-formed exposition parses
//! back to exactly the samples and families it was rendered from.

use crate::support;

use prom_text::parse;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let e = parse(&text);
        prop_assert!(e.samples.len() + e.skipped.len() <= text.split('\n').count());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }

    /// Strings made of the format's own punctuation reach the deep error paths.
    #[test]
    fn syntax_soup_never_panics(text in "([a-z_:{}\",=\\\\ \t\r\n#+.0-9]|HELP|TYPE|NaN|Inf|counter){0,80}") {
        let e = parse(&text);
        let lines = text.split('\n').count();
        for s in &e.samples {
            prop_assert!(s.line >= 1 && s.line <= lines);
        }
        for s in &e.skipped {
            prop_assert!(s.line >= 1 && s.line <= lines);
            prop_assert!(!s.to_string().is_empty());
        }
        prop_assert!(e.samples.windows(2).all(|w| w[0].line < w[1].line));
    }

    #[test]
    fn well_formed_expositions_round_trip(model in support::model()) {
        let text = model.render();
        let e = parse(&text);
        prop_assert!(e.skipped.is_empty(), "skipped {:?} in\n{}", e.skipped, text);
        prop_assert_eq!(support::parsed_samples(&e), model.samples(), "{}", text);
        prop_assert_eq!(support::parsed_families(&e), model.declared(), "{}", text);
    }
}
