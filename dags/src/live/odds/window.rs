//! The per-window aggregate of one (event, market, bookmaker).
//!
//! "Open" here is the first snapshot *in the window* (by event time, not by
//! arrival). The opening line (first snapshot ever of the key;
//! docs/formulas.md#opening-and-closing-lines) is kept by the
//! `serving.odds_latest` upsert, which only ever moves `open_time` earlier,
//! so it survives restarts and rebalances, which an in-memory map would not.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::market::{no_vig, overround, BookMarket, Quote, Side};
use sources::odds_math::decimal_to_american;
use streaming::window::Aggregate;

/// Running mean and variance (Welford), so volatility needs no buffer of
/// the window's snapshots. Checkpointed with exact floats (`streaming::exact`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    n: u64,
    #[serde(with = "streaming::exact")]
    mean: f64,
    #[serde(with = "streaming::exact")]
    m2: f64,
    #[serde(with = "streaming::exact")]
    min: f64,
    #[serde(with = "streaming::exact")]
    max: f64,
}

impl Running {
    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        let delta: f64 = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// Sample standard deviation (n − 1); `None` below two values.
    pub fn sample_stdev(&self) -> Option<f64> {
        (self.n > 1).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }

    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }
}

/// Accumulates one bookmaker's market over a window, in constant space
/// however many snapshots it sees. Each snapshot is added once: the
/// processor skips a quote whose `last_update` it already applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OddsWindow {
    #[serde(with = "exact_quotes")]
    open: Option<(DateTime<Utc>, Vec<Quote>)>,
    #[serde(with = "exact_quotes")]
    latest: Option<(DateTime<Utc>, Vec<Quote>)>,
    implied: BTreeMap<Side, Running>,
    overround: Running,
}

/// A window's timed quotes with exact floats, for checkpoints; [`Quote`]'s
/// own serialization (plain numbers) stays what rows and logs show.
mod exact_quotes {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Quote, Side};

    #[derive(Serialize, Deserialize)]
    struct Exact {
        side: Side,
        #[serde(with = "streaming::exact::option")]
        point: Option<f64>,
        #[serde(with = "streaming::exact")]
        decimal: f64,
    }

    type Timed<Q> = Option<(DateTime<Utc>, Vec<Q>)>;

    pub fn serialize<S: Serializer>(v: &Timed<Quote>, s: S) -> Result<S::Ok, S::Error> {
        let exact: Timed<Exact> = v.as_ref().map(|(t, quotes)| {
            let quotes: Vec<Exact> = quotes
                .iter()
                .map(|q| Exact {
                    side: q.side,
                    point: q.point,
                    decimal: q.decimal,
                })
                .collect();
            (*t, quotes)
        });
        exact.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timed<Quote>, D::Error> {
        let exact: Timed<Exact> = Deserialize::deserialize(d)?;
        Ok(exact.map(|(t, quotes)| {
            let quotes: Vec<Quote> = quotes
                .into_iter()
                .map(|q| Quote {
                    side: q.side,
                    point: q.point,
                    decimal: q.decimal,
                })
                .collect();
            (t, quotes)
        }))
    }
}

/// One outcome's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeWindow {
    pub side: Side,
    pub open_decimal: Option<f64>,
    pub open_point: Option<f64>,
    pub latest_decimal: f64,
    pub latest_point: Option<f64>,
    /// latest − open, in decimal odds.
    pub move_decimal: Option<f64>,
    /// latest − open, in American odds (jumps by 200 across even money).
    pub move_american: Option<f64>,
    /// latest − open line, for spreads and totals.
    pub move_point: Option<f64>,
    pub implied_probability: f64,
    pub no_vig_probability: f64,
    /// Sample stdev of the implied probability over the window's snapshots.
    pub volatility: Option<f64>,
    pub snapshots: u64,
}

/// A closed window of one (event, market, bookmaker).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OddsWindowOutput {
    pub snapshots: u64,
    pub open_time: DateTime<Utc>,
    pub latest_time: DateTime<Utc>,
    /// Overround (fraction) of the latest snapshot.
    pub overround_latest: f64,
    pub overround_avg: f64,
    pub overround_min: f64,
    pub overround_max: f64,
    pub outcomes: Vec<OutcomeWindow>,
}

impl Aggregate for OddsWindow {
    type Event = BookMarket;
    type Output = OddsWindowOutput;

    fn add(&mut self, event_time: DateTime<Utc>, market: &BookMarket) {
        for q in &market.quotes {
            self.implied.entry(q.side).or_default().push(q.implied());
        }
        self.overround.push(overround(&market.quotes));
        if self.open.as_ref().is_none_or(|(t, _)| event_time < *t) {
            self.open = Some((event_time, market.quotes.clone()));
        }
        if self.latest.as_ref().is_none_or(|(t, _)| event_time > *t) {
            self.latest = Some((event_time, market.quotes.clone()));
        }
    }

    fn finish(&self) -> Option<OddsWindowOutput> {
        let (open_time, open) = self.open.as_ref()?;
        let (latest_time, latest) = self.latest.as_ref()?;
        let fair: Vec<f64> = no_vig(latest);
        let outcomes: Vec<OutcomeWindow> = latest
            .iter()
            .zip(fair)
            .map(|(q, fair)| {
                let first: Option<&Quote> = open.iter().find(|o| o.side == q.side);
                let running: Running = self.implied.get(&q.side).copied().unwrap_or_default();
                OutcomeWindow {
                    side: q.side,
                    open_decimal: first.map(|o| o.decimal),
                    open_point: first.and_then(|o| o.point),
                    latest_decimal: q.decimal,
                    latest_point: q.point,
                    move_decimal: first.map(|o| q.decimal - o.decimal),
                    move_american: first.and_then(|o| {
                        Some(decimal_to_american(q.decimal)? - decimal_to_american(o.decimal)?)
                    }),
                    move_point: first.and_then(|o| Some(q.point? - o.point?)),
                    implied_probability: q.implied(),
                    no_vig_probability: fair,
                    volatility: running.sample_stdev(),
                    snapshots: running.count(),
                }
            })
            .collect();
        Some(OddsWindowOutput {
            snapshots: self.overround.count(),
            open_time: *open_time,
            latest_time: *latest_time,
            overround_latest: overround(latest),
            overround_avg: self.overround.mean()?,
            overround_min: self.overround.min()?,
            overround_max: self.overround.max()?,
            outcomes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid")
    }

    fn snap(secs: i64, home: f64, away: f64) -> BookMarket {
        BookMarket {
            event_id: "e".into(),
            market: "h2h".into(),
            bookmaker: "b".into(),
            time: at(secs),
            quotes: vec![
                Quote {
                    side: Side::Home,
                    point: None,
                    decimal: home,
                },
                Quote {
                    side: Side::Away,
                    point: None,
                    decimal: away,
                },
            ],
        }
    }

    #[test]
    fn open_latest_move_and_volatility_regardless_of_arrival_order() {
        let mut w = OddsWindow::default();
        // Arrival order 2, 1, 3: open is t=1, latest t=3.
        for (t, h, a) in [(20, 2.0, 2.0), (10, 1.8, 2.2), (30, 2.5, 1.6)] {
            let s = snap(t, h, a);
            w.add(s.time, &s);
        }
        let out = w.finish().expect("has snapshots");
        assert_eq!(out.snapshots, 3);
        assert_eq!((out.open_time, out.latest_time), (at(10), at(30)));
        let home = &out.outcomes[0];
        assert_eq!(home.open_decimal, Some(1.8));
        assert_eq!(home.latest_decimal, 2.5);
        assert!((home.move_decimal.unwrap_or(0.0) - 0.7).abs() < 1e-12);
        // 1.8 → −125, 2.5 → +150: +275 American.
        assert!((home.move_american.unwrap_or(0.0) - 275.0).abs() < 1e-9);
        // Implied p: 1/1.8, 1/2, 1/2.5 = 0.5556, 0.5, 0.4: mean 0.48519,
        // sample stdev = sqrt((0.07037² + 0.01481² + 0.08519²) / 2) = 0.078829.
        let ps: [f64; 3] = [1.0 / 1.8, 0.5, 0.4];
        let mean: f64 = ps.iter().sum::<f64>() / 3.0;
        let sd: f64 = (ps.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((home.volatility.unwrap_or(0.0) - sd).abs() < 1e-12);
        assert!((sd - 0.078829).abs() < 1e-6);
        // Latest 2.5/1.6: p = 0.4 + 0.625 = 1.025 → overround 2.5 %, no-vig 0.4/1.025.
        assert!((out.overround_latest - 0.025).abs() < 1e-12);
        assert!((home.no_vig_probability - 0.4 / 1.025).abs() < 1e-12);
        // Overrounds 1/1.8 + 1/2.2 − 1 = 1.0101 %, 0 %, 2.5 %.
        assert!((out.overround_min - 0.0).abs() < 1e-12);
        assert!((out.overround_max - 0.025).abs() < 1e-12);
        assert!((out.overround_avg - (1.0 / 99.0 + 0.025) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn single_snapshot_has_no_volatility() {
        let mut w = OddsWindow::default();
        let s = snap(5, 1.909, 1.909);
        w.add(s.time, &s);
        let out = w.finish().expect("one snapshot");
        assert_eq!(out.outcomes[0].volatility, None);
        assert_eq!(out.outcomes[0].move_decimal, Some(0.0));
        assert!(OddsWindow::default().finish().is_none());
    }
}
