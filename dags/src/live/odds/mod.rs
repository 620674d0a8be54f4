//! The odds processor: decoded `betflow.odds.{sport}` messages in, latest
//! prices, cross-book best prices and arbitrage alerts, and closed
//! per-(event, market, bookmaker) windows out.

pub mod market;
pub mod rows;
pub mod signals;
pub mod window;

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::live::envelope::{Envelope, Keyed};
use crate::live::PartitionState;
use market::{best_prices, BookMarket, MarketBest, Quote, Side};
use sources::odds_api::{
    bookmaker_problem, Bookmaker, BookmakerProblem, Market, OddsEvent, OddsFormat,
};
use sources::odds_math::american_to_decimal;
use sources::text::{MAX_ID, MAX_NAME};
use streaming::dead_letter::DeadLetterReason;
use streaming::window::{Closed, LateEvent, WindowError, WindowSpec, Windowed, WindowedSnapshot};
use window::{OddsWindow, OddsWindowOutput};

/// Processor name in the serving tables' `processor` column.
pub const PROCESSOR: &str = "odds";

/// An odds message's payload: one Odds API event as polled, with the format
/// its prices were requested in (the numbers alone do not say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddsPayload {
    pub odds_format: OddsFormat,
    pub event: OddsEvent,
}

impl Keyed for OddsPayload {
    fn message_key(&self) -> &str {
        &self.event.id
    }

    /// The event's own fields; a bookmaker's or a market's text rejects that
    /// bookmaker or market alone ([`book_markets`]).
    fn text_problem(&self) -> Option<String> {
        use crate::live::text::{field, optional};
        let e: &OddsEvent = &self.event;
        field("event id", &e.id, MAX_ID)
            .and_then(|()| field("home team", &e.home_team, MAX_NAME))
            .and_then(|()| field("away team", &e.away_team, MAX_NAME))
            .and_then(|()| optional("sport key", e.sport_key.as_deref(), MAX_ID))
            .and_then(|()| optional("sport title", e.sport_title.as_deref(), MAX_NAME))
            .err()
    }
}

/// Window key: one bookmaker's market of one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OddsKey {
    pub event_id: String,
    pub market: String,
    pub bookmaker: String,
}

impl OddsKey {
    fn of(m: &BookMarket) -> Self {
        Self {
            event_id: m.event_id.clone(),
            market: m.market.clone(),
            bookmaker: m.bookmaker.clone(),
        }
    }

    /// The serving tables' `key` column.
    pub fn as_key(&self) -> String {
        format!("{}/{}/{}", self.event_id, self.market, self.bookmaker)
    }
}

/// A bookmaker market the processor refused, for the dead-letter table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub event_id: String,
    pub bookmaker: String,
    pub market: String,
    pub reason: String,
}

fn quotes(event: &OddsEvent, market: &Market, format: OddsFormat) -> Result<Vec<Quote>, String> {
    let mut quotes: Vec<Quote> = Vec::with_capacity(market.outcomes.len());
    for o in &market.outcomes {
        crate::live::text::field("outcome name", &o.name, MAX_NAME)?;
        let side: Side = event
            .side(&o.name)
            .ok_or_else(|| format!("outcome `{}` matches neither team", o.name))?;
        if quotes.iter().any(|q| q.side == side) {
            return Err(format!("outcome `{}` listed twice", o.name));
        }
        // The ingest validation's bounds: a price of 1e300 or NaN is not odds.
        if let Some(problem) = sources::odds_api::price_problem(o.price, format) {
            return Err(format!(
                "price {} of `{}` is not valid {} odds: {problem}",
                o.price,
                o.name,
                format.as_str()
            ));
        }
        let decimal: f64 = match format {
            OddsFormat::American => american_to_decimal(o.price),
            OddsFormat::Decimal => (o.price.is_finite() && o.price > 1.0).then_some(o.price),
        }
        .ok_or_else(|| {
            format!(
                "price {} of `{}` is not valid {} odds",
                o.price,
                o.name,
                format.as_str()
            )
        })?;
        quotes.push(Quote {
            side,
            point: o.point,
            decimal,
        });
    }
    if quotes.len() < 2 {
        return Err(format!(
            "{} outcome(s); a market needs at least 2",
            quotes.len()
        ));
    }
    Ok(quotes)
}

/// Splits a payload into whole bookmaker markets; a market with a bad
/// price, outcome or key is rejected alone (its overround would be wrong),
/// and a bookmaker listed twice or with a bad key with all its markets.
pub fn book_markets(
    payload: &OddsPayload,
    event_time: DateTime<Utc>,
) -> (Vec<BookMarket>, Vec<Rejection>) {
    let event: &OddsEvent = &payload.event;
    let mut good: Vec<BookMarket> = Vec::new();
    let mut rejected: Vec<Rejection> = Vec::new();
    for (i, b) in event.bookmakers.iter().enumerate() {
        let b: &Bookmaker = b;
        if let Some(problem) = bookmaker_problem(event, i) {
            // A key out of bounds may not be stored: named by its position.
            let bookmaker = match &problem {
                BookmakerProblem::Key(_) => format!("bookmaker #{}", i + 1),
                BookmakerProblem::Twice(key) => key.clone(),
            };
            rejected.push(Rejection {
                event_id: event.id.clone(),
                bookmaker,
                market: "every market".to_owned(),
                reason: problem.to_string(),
            });
            continue;
        }
        for (j, m) in b.markets.iter().enumerate() {
            if let Err(p) = sources::text::check(&m.key, MAX_ID) {
                rejected.push(Rejection {
                    event_id: event.id.clone(),
                    bookmaker: b.key.clone(),
                    market: format!("market #{}", j + 1),
                    reason: format!("market key {p}"),
                });
                continue;
            }
            match quotes(event, m, payload.odds_format) {
                Ok(quotes) => good.push(BookMarket {
                    event_id: event.id.clone(),
                    market: m.key.clone(),
                    bookmaker: b.key.clone(),
                    time: m.last_update.or(b.last_update).unwrap_or(event_time),
                    quotes,
                }),
                Err(reason) => rejected.push(Rejection {
                    event_id: event.id.clone(),
                    bookmaker: b.key.clone(),
                    market: m.key.clone(),
                    reason,
                }),
            }
        }
    }
    (good, rejected)
}

/// What one message produced.
#[derive(Debug, Default)]
pub struct OddsBatch {
    /// Latest prices per bookmaker market: upserts into `serving.odds_latest`.
    pub latest: Vec<BookMarket>,
    /// Best prices per market and line, with arbitrage when present.
    pub best: Vec<MarketBest>,
    /// Windows the watermark closed: `serving.odds_windows`.
    pub closed: Vec<Closed<OddsKey, OddsWindowOutput>>,
    /// Bookmaker markets behind the watermark: dead letters.
    pub late: Vec<LateEvent<OddsKey, BookMarket>>,
    pub rejected: Vec<Rejection>,
    /// Bookmaker markets whose update was already applied: a poll repeats
    /// every quote with its `last_update`, changed or not.
    pub repeats: usize,
    /// The message's event (teams, start): `serving.odds_events`.
    pub event: Option<EventInfo>,
    /// Value signals of the poll and steam signals of the closed windows:
    /// `serving.market_alerts` (with the arbitrage of `best`).
    pub signals: Vec<signals::Signal>,
}

/// Who plays and when, as the odds source names them.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInfo {
    pub event_id: String,
    pub home_team: String,
    pub away_team: String,
    pub commence_time: DateTime<Utc>,
    pub event_time: DateTime<Utc>,
}

/// How long the time of a key's last applied update is remembered after
/// the watermark passed it; a repeat older than that counts as late.
pub const APPLIED_MEMORY: TimeDelta = TimeDelta::hours(6);

/// A checkpointed [`OddsProcessor`]: with the `last_update` applied per
/// key, so a restored processor tells repeats from news exactly as the one
/// that saved it would have (a poll's time is not a quote's `last_update`),
/// and the message count that paces forgetting them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddsSnapshot {
    windows: WindowedSnapshot<OddsKey, OddsWindow>,
    applied: Vec<(OddsKey, i64)>,
    handled: u64,
}

/// Keyed windows over bookmaker markets.
pub struct OddsProcessor {
    windows: Windowed<OddsKey, OddsWindow>,
    /// How value and steam are judged (configuration, not state: not in
    /// the snapshot).
    rules: pricing::Rules,
    /// Event time (ms) of each key's newest applied update, to tell a
    /// repeated quote (skipped) from a late one (dead-lettered).
    applied: HashMap<OddsKey, i64>,
    handled: u64,
}

impl OddsProcessor {
    pub fn new(spec: WindowSpec, allowed_lateness: TimeDelta) -> Result<Self, WindowError> {
        Ok(Self {
            windows: Windowed::new(spec, allowed_lateness, OddsWindow::default())?,
            rules: pricing::Rules::default(),
            applied: HashMap::new(),
            handled: 0,
        })
    }

    /// This processor judging value and steam by `rules`.
    pub fn with_rules(mut self, rules: pricing::Rules) -> Self {
        self.rules = rules;
        self
    }

    pub fn windows(&self) -> &Windowed<OddsKey, OddsWindow> {
        &self.windows
    }

    /// Processes one decoded message.
    pub fn handle(&mut self, envelope: &Envelope<OddsPayload>) -> OddsBatch {
        let (markets, rejected) = book_markets(&envelope.payload, envelope.event_time);
        let event = &envelope.payload.event;
        let mut batch: OddsBatch = OddsBatch {
            best: best_prices(&markets),
            signals: signals::value_signals(&markets, envelope.event_time, &self.rules),
            rejected,
            event: Some(EventInfo {
                event_id: event.id.clone(),
                home_team: event.home_team.clone(),
                away_team: event.away_team.clone(),
                commence_time: event.commence_time,
                event_time: envelope.event_time,
            }),
            ..OddsBatch::default()
        };
        let mut latest: Vec<BookMarket> = Vec::with_capacity(markets.len());
        for m in markets {
            let key: OddsKey = OddsKey::of(&m);
            let t: i64 = m.time.timestamp_millis();
            // The same `last_update` again: the quote is unchanged since the
            // last poll. (An older one is a real out-of-order update.)
            if self.applied.get(&key).is_some_and(|seen| t == *seen) {
                batch.repeats += 1;
                continue;
            }
            // Windows and the watermark run on the poll's event time: one
            // poll carries quotes last updated minutes apart, in no order,
            // and a quote first seen in this poll is news now, not late.
            match self.windows.push(
                key.clone(),
                envelope.event_time,
                envelope.ingest_time,
                m.clone(),
            ) {
                Ok(()) => {
                    let seen = self.applied.entry(key).or_insert(t);
                    *seen = (*seen).max(t);
                }
                Err(late) => batch.late.push(late),
            }
            latest.push(m);
        }
        batch.latest = latest;
        batch.closed = self.windows.drain_closed();
        batch
            .signals
            .extend(signals::steam_signals(&batch.closed, &self.rules));
        self.handled += 1;
        if self.handled.is_multiple_of(1024) {
            self.forget_applied();
        }
        batch
    }

    /// Keeps memory bounded: drops keys whose last update is older than
    /// [`APPLIED_MEMORY`] behind the watermark.
    fn forget_applied(&mut self) {
        if let Some(wm) = self.windows.watermark() {
            let horizon: i64 = (wm - APPLIED_MEMORY).timestamp_millis();
            self.applied.retain(|_, t| *t >= horizon);
        }
    }

    /// Keys whose last applied update is remembered.
    pub fn remembered_keys(&self) -> usize {
        self.applied.len()
    }

    /// Emits every open window (shutdown, end of a replay).
    pub fn flush(&mut self) -> Vec<Closed<OddsKey, OddsWindowOutput>> {
        self.windows.flush_all()
    }
}

impl PartitionState for OddsProcessor {
    type Topics = crate::live::envelope::Topics;
    type Payload = OddsPayload;
    type Output = OddsBatch;
    type Snapshot = OddsSnapshot;

    /// Rejected bookmaker markets and late ones are the message's problems.
    fn apply(&mut self, envelope: &Envelope<OddsPayload>) -> (OddsBatch, Option<DeadLetterReason>) {
        let batch: OddsBatch = self.handle(envelope);
        let mut problems: Vec<DeadLetterReason> = batch
            .rejected
            .iter()
            .map(|r| {
                DeadLetterReason::new(
                    "rejected",
                    format!("{}/{}: {}", r.bookmaker, r.market, r.reason),
                )
            })
            .collect();
        problems.extend(batch.late.iter().map(|l| {
            DeadLetterReason::new(
                "late",
                format!(
                    "{}: late (event {} behind watermark {})",
                    l.key.as_key(),
                    l.event_time,
                    l.watermark
                ),
            )
        }));
        (batch, DeadLetterReason::join(problems))
    }

    /// Everything accumulated so far, for a checkpoint.
    fn snapshot(&self) -> OddsSnapshot {
        let mut applied: Vec<(OddsKey, i64)> =
            self.applied.iter().map(|(k, t)| (k.clone(), *t)).collect();
        applied.sort();
        OddsSnapshot {
            windows: self.windows.snapshot(),
            applied,
            handled: self.handled,
        }
    }

    fn restore(&mut self, snapshot: OddsSnapshot) {
        self.windows.restore(snapshot.windows);
        self.applied = snapshot.applied.into_iter().collect();
        self.handled = snapshot.handled;
    }

    fn heal(&mut self, not_after: DateTime<Utc>) {
        if self.windows.heal(not_after) {
            tracing::warn!(%not_after, "restored windows held event times past now; pulled back");
        }
    }
}

#[cfg(test)]
mod tests;
