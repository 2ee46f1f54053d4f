//! Theory checks: before the simulator's numbers are trusted for anything, it must reproduce
//! results known in closed form (BALANCING.md, "The simulator").
//!
//! Where it sits: the CLI's `theory` command runs [`checks`] and prints [`table`]; the tests run
//! the cheap ones. Every member here is an M/M/1 queue with service rate mu = 1, so times are in
//! units of the mean service time.
//!
//! The formulas:
//! - random routing splits a Poisson stream into independent Poisson streams, so each member is an
//!   M/M/1 queue: sojourn is exponential with rate mu - lambda (mean 1 / (mu - lambda), p99
//!   ln(100) / (mu - lambda)), and P(Q >= k) = rho^k;
//! - P2C on N -> infinity equal members is the supermarket model (Mitzenmacher; Vvedenskaya,
//!   Dobrushin, Karpelevich): the fraction of members with at least k jobs is
//!   s_k = rho^((d^k - 1) / (d - 1)) for d choices (rho^(2^k - 1) for two), and the mean time in
//!   system is sum_{k>=1} s_k / lambda;
//! - round robin hands each member every N-th arrival: Erlang-N interarrivals, an E_N/M/1 queue
//!   whose sojourn is exponential with rate mu (1 - sigma), sigma the root in (0, 1) of
//!   sigma = (N lambda / (N lambda + mu (1 - sigma)))^N;
//! - least-conn (join the shortest queue) has no closed form; one central queue feeding all N
//!   servers (M/M/N, Erlang C) is a lower bound no dispatcher can beat.

use std::fmt::Write;

use drover_core::PolicyKind;

use crate::report::Report;
use crate::sim::{Config, SimError, run};

/// M/M/1 mean sojourn at load `rho` (mu = 1).
pub fn mm1_mean(rho: f64) -> f64 {
    1.0 / (1.0 - rho)
}

/// Supermarket model with `d` choices: s_k, the fraction of members with at least `k` jobs.
pub fn supermarket_tail(rho: f64, d: u32, k: u32) -> f64 {
    let d = f64::from(d);
    let exponent = if d == 1.0 {
        f64::from(k)
    } else {
        (d.powi(k as i32) - 1.0) / (d - 1.0)
    };
    rho.powf(exponent)
}

/// Supermarket model with `d` choices: mean time in system (mu = 1), by Little's law.
pub fn supermarket_mean(rho: f64, d: u32) -> f64 {
    let mut sum = 0.0;
    for k in 1..100_000 {
        let s = supermarket_tail(rho, d, k);
        sum += s;
        if s < 1e-15 {
            break;
        }
    }
    sum / rho
}

/// E_N/M/1 mean sojourn: round robin over `n` M/M/1 members at load `rho` (mu = 1).
pub fn round_robin_mean(n: u32, rho: f64) -> f64 {
    let a = f64::from(n) * rho;
    let mut sigma = 0.0f64;
    // The iteration rises monotonically to the smallest root; slow only as rho -> 1.
    for _ in 0..1_000_000 {
        let next = (a / (a + 1.0 - sigma)).powi(n as i32);
        if (next - sigma).abs() < 1e-14 {
            sigma = next;
            break;
        }
        sigma = next;
    }
    1.0 / (1.0 - sigma)
}

/// M/M/c mean sojourn (Erlang C) at load `rho` per server (mu = 1).
pub fn mmc_mean(c: u32, rho: f64) -> f64 {
    let a = f64::from(c) * rho;
    let mut b = 1.0; // Erlang B, by the stable recursion
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let erlang_c = b / (1.0 - rho * (1.0 - b));
    1.0 + erlang_c / (f64::from(c) * (1.0 - rho))
}

/// What the expected figure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The exact value (for N -> infinity where the check says so).
    Exact,
    /// A floor the measured value must stay above.
    LowerBound,
}

/// One row of the theory table.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub expected: f64,
    pub expect: Expect,
    pub measured: f64,
    /// 95% half-width of `measured`, where the run gives one (means, by batch means).
    pub ci: Option<f64>,
}

impl Check {
    /// Signed relative error, percent.
    pub fn error_pct(&self) -> f64 {
        (self.measured - self.expected) / self.expected * 100.0
    }
}

/// Sizes of the theory runs.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Measured jobs of each run at load <= 0.9.
    pub jobs: u64,
    /// Measured jobs of each run at load 0.99 (0 = skip those).
    pub long_jobs: u64,
    pub seed: u64,
}

fn exact(name: String, expected: f64, measured: f64) -> Check {
    Check {
        name,
        expected,
        expect: Expect::Exact,
        measured,
        ci: None,
    }
}

/// A check on the mean sojourn of `r`, with its confidence interval.
fn mean(name: String, expected: f64, expect: Expect, r: &Report) -> Check {
    Check {
        name,
        expected,
        expect,
        measured: r.mean,
        ci: Some(r.mean_ci),
    }
}

fn mm1_run(
    policy: PolicyKind,
    n: usize,
    rho: f64,
    jobs: u64,
    seed: u64,
) -> Result<Report, SimError> {
    run(&Config::mm1(policy, n, rho, jobs, seed))
}

/// Runs every check. `progress` is told the name of each run as it starts (the long ones take a
/// while).
pub fn checks(sizes: Sizes, mut progress: impl FnMut(&str)) -> Result<Vec<Check>, SimError> {
    let Sizes { jobs, seed, .. } = sizes;
    let mut out = Vec::new();
    progress("random");
    for (n, rho) in [(1, 0.5), (1, 0.9), (10, 0.5), (10, 0.9), (100, 0.9)] {
        let r = mm1_run(PolicyKind::Random, n, rho, jobs, seed)?;
        let name = format!("random, {n} x M/M/1, load {rho}");
        let what = format!("{name}: mean sojourn");
        out.push(mean(what, mm1_mean(rho), Expect::Exact, &r));
        out.push(exact(
            format!("{name}: p99 sojourn"),
            100f64.ln() * mm1_mean(rho),
            r.p99,
        ));
        if n == 100 {
            for k in 1..=3 {
                let name = format!("{name}: P(Q >= {k}) = rho^{k}");
                out.push(exact(name, rho.powi(k), r.tail(k as usize)));
            }
        }
    }
    progress("p2c");
    for n in [20, 100, 1000] {
        let rho = 0.9;
        let r = mm1_run(PolicyKind::P2c, n, rho, jobs, seed)?;
        let name = format!("p2c, {n} x M/M/1, load {rho}");
        let what = format!("{name}: mean (supermarket, N = inf)");
        out.push(mean(what, supermarket_mean(rho, 2), Expect::Exact, &r));
        if n >= 100 {
            for k in 1..=6u32 {
                out.push(exact(
                    format!("{name}: P(Q >= {k}) = rho^{}", 2u32.pow(k) - 1),
                    supermarket_tail(rho, 2, k),
                    r.tail(k as usize),
                ));
            }
        }
    }
    progress("round-robin");
    let r = mm1_run(PolicyKind::RoundRobin, 100, 0.9, jobs, seed)?;
    let what = "round-robin, 100 x M/M/1, load 0.9: mean (E_100/M/1)".into();
    out.push(mean(what, round_robin_mean(100, 0.9), Expect::Exact, &r));
    progress("least-conn");
    let r = mm1_run(PolicyKind::LeastConn, 100, 0.9, jobs, seed)?;
    let what = "least-conn, 100 x M/M/1, load 0.9: mean (>= M/M/100)".into();
    out.push(mean(what, mmc_mean(100, 0.9), Expect::LowerBound, &r));
    if sizes.long_jobs > 0 {
        let rho = 0.99;
        progress("p2c at 0.99");
        let mut c = Config::mm1(PolicyKind::P2c, 100, rho, sizes.long_jobs, seed);
        c.warmup = sizes.long_jobs / 5;
        let r = run(&c)?;
        let what = format!("p2c, 100 x M/M/1, load {rho}: mean (supermarket, N = inf)");
        out.push(mean(what, supermarket_mean(rho, 2), Expect::Exact, &r));
        progress("random at 0.99");
        c.policy = PolicyKind::Random;
        let r = run(&c)?;
        let what = format!("random, 100 x M/M/1, load {rho}: mean sojourn");
        out.push(mean(what, mm1_mean(rho), Expect::Exact, &r));
    }
    Ok(out)
}

/// The checks as a markdown table.
pub fn table(checks: &[Check]) -> String {
    let mut s =
        String::from("| check | expected | measured | 95% CI | error % |\n|---|---|---|---|---|\n");
    for c in checks {
        let bound = match c.expect {
            Expect::Exact => "",
            Expect::LowerBound => ">= ",
        };
        let ci = c.ci.map(|h| format!("+-{}", sig(h))).unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {bound}{} | {} | {ci} | {:+.1} |",
            c.name,
            sig(c.expected),
            sig(c.measured),
            c.error_pct()
        );
    }
    s
}

/// Four significant digits, in plain or scientific notation as fits.
fn sig(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.01 {
        format!("{x:.3e}")
    } else {
        let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_the_published_figures() {
        assert!((supermarket_mean(0.9, 2) - 2.61).abs() < 0.01);
        assert!((supermarket_mean(0.99, 2) - 5.43).abs() < 0.01);
        assert!(
            (supermarket_mean(0.9, 1) - 10.0).abs() < 1e-6,
            "d = 1 is M/M/1"
        );
        assert!((mm1_mean(0.99) - 100.0).abs() < 1e-9);
        // E_1/M/1 is M/M/1.
        assert!((round_robin_mean(1, 0.5) - 2.0).abs() < 1e-9);
        // M/M/1 through Erlang C.
        assert!((mmc_mean(1, 0.9) - 10.0).abs() < 1e-9);
        // M/M/2 at rho 0.5: W = 1 / (mu (1 - rho^2)) = 4/3.
        assert!((mmc_mean(2, 0.5) - 4.0 / 3.0).abs() < 1e-9);
        // More servers, less waiting; round robin between M/M/1 and M/M/N.
        let rr = round_robin_mean(100, 0.9);
        assert!(mmc_mean(100, 0.9) < rr && rr < 10.0, "{rr}");
    }

    #[test]
    fn table_formats() {
        let t = table(&[exact("x".into(), 2.0, 2.02)]);
        assert!(t.contains("| x | 2.000 | 2.020 |  | +1.0 |"), "{t}");
    }
}
