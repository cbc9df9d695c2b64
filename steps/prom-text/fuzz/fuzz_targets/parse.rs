//! Any bytes (as lossy UTF-8) through the parser: it must not panic, and what it returns must
//! be consistent with the input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let e = prom_text::parse(&text);
    let lines = text.split('\n').count();
    assert!(e.samples.len() + e.skipped.len() <= lines);
    for s in &e.samples {
        assert!((1..=lines).contains(&s.line));
        assert!(text.contains(s.name));
        for (name, _) in s.labels.iter() {
            assert!(s.labels.get(name).is_some());
        }
        let _ = prom_text::dcgm::hostname(&s.labels);
        let _ = prom_text::dcgm::is_blank(s.value);
    }
    for s in &e.skipped {
        assert!((1..=lines).contains(&s.line));
        let _ = s.to_string();
    }
});
