//! The outlier rule of passive checks: a member whose error rate over an interval is far above
//! the rest of its farm's is ejected, even when its failures never came in a row.
//!
//! Pure: the ejection supervisor (`drover-health`) samples each member's request and failure
//! counters every `outlier_interval`, passes the differences here and ejects what comes back
//! through [`Farm::eject`](crate::Farm::eject) (which keeps the `max_ejected` cap).

/// When a member counts as an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutlierRules {
    /// Error rate more than this many times the rest of the farm's; 0 = the rule is off.
    pub factor: f64,
    /// Members with fewer requests in the interval are not judged.
    pub min_requests: u64,
    /// Below this error rate (0..=1) no member is an outlier.
    pub min_error_rate: f64,
}

/// One member judged an outlier: its index, its error rate and the rest of the farm's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlier {
    pub index: usize,
    pub rate: f64,
    pub others: f64,
}

/// Judges one interval. `samples[i]` is member i's (requests, failures) during the interval.
pub fn outliers(samples: &[(u64, u64)], rules: &OutlierRules) -> Vec<Outlier> {
    if rules.factor <= 0.0 {
        return Vec::new();
    }
    let (total_q, total_f) = samples
        .iter()
        .fold((0u64, 0u64), |(q, f), &(mq, mf)| (q + mq, f + mf));
    samples
        .iter()
        .enumerate()
        .filter(|&(_, &(q, _))| q > 0 && q >= rules.min_requests)
        .filter_map(|(index, &(q, f))| {
            let rate = f.min(q) as f64 / q as f64;
            let rest_q = total_q - q;
            let rest_f = total_f - f;
            // With no traffic elsewhere there is nothing to compare against.
            let others = if rest_q == 0 {
                return None;
            } else {
                rest_f.min(rest_q) as f64 / rest_q as f64
            };
            (rate >= rules.min_error_rate && rate > rules.factor * others).then_some(Outlier {
                index,
                rate,
                others,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: OutlierRules = OutlierRules {
        factor: 3.0,
        min_requests: 20,
        min_error_rate: 0.1,
    };

    #[test]
    fn a_member_far_above_the_rest_is_an_outlier() {
        let found = outliers(&[(100, 40), (100, 2), (100, 3)], &RULES);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index, 0);
        assert!((found[0].rate - 0.4).abs() < 1e-9 && (found[0].others - 0.025).abs() < 1e-9);
    }

    #[test]
    fn no_outlier_when_everyone_fails_alike_or_rates_are_low() {
        assert!(outliers(&[(100, 50), (100, 45), (100, 55)], &RULES).is_empty());
        assert!(
            outliers(&[(100, 5), (100, 0), (100, 0)], &RULES).is_empty(),
            "5% is under the 10% floor"
        );
    }

    #[test]
    fn too_few_requests_or_rule_off() {
        assert!(outliers(&[(10, 10), (100, 0)], &RULES).is_empty());
        let off = OutlierRules {
            factor: 0.0,
            ..RULES
        };
        assert!(outliers(&[(100, 90), (100, 0)], &off).is_empty());
        assert!(outliers(&[(100, 90), (0, 0)], &RULES).is_empty());
    }
}
