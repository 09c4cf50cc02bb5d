//! Arbitrary text as a rule string: parsing returns `Ok` or `Err`, never panics, and every rule
//! it accepts prints as a string that parses back to the same rule and prints the same.
#![no_main]

use dtdcert::dtd::Rule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = text.parse::<Rule>() else {
        return;
    };
    let printed = rule.to_string();
    let again: Rule = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} parsed as {rule:?}, printed as {printed:?}: {e}"));
    assert_eq!(again, rule, "{text:?} -> {printed:?}");
    assert_eq!(again.to_string(), printed);
    // Parameters are finite, and the sign constraints hold.
    match rule {
        Rule::Gamma(g) => assert!(g.is_finite() && g >= 0.0),
        Rule::Epsilon(e) => assert!(e.is_finite() && e >= 0.0),
        Rule::ZBox { lo, hi } => assert!(lo.is_finite() && hi.is_finite() && lo <= hi),
        Rule::AlphaBeta { alpha, beta } => {
            assert!(alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0)
        }
        Rule::NearestValid(_) => assert!(rule.needs_lp() && !rule.has_root()),
        Rule::Zero | Rule::Z | Rule::ZPlus | Rule::WSquare | Rule::Flat => {}
    }
});
