//! The odds processor: decoded `betflow.odds.{sport}` messages in, latest
//! prices, cross-book best prices and arbitrage alerts, and closed
//! per-(event, market, bookmaker) windows out.

pub mod market;
pub mod rows;
pub mod window;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::sources::odds_api::{Bookmaker, Market, OddsEvent, OddsFormat};
use crate::sources::odds_math::american_to_decimal;
use crate::stream::envelope::{Envelope, Keyed};
use crate::stream::window::{
    Closed, LateEvent, WindowError, WindowSpec, Windowed, WindowedSnapshot,
};
use market::{best_prices, BookMarket, MarketBest, Quote, Side};
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

/// Maps an outcome name to its side by name: a team name, Draw, Over, Under.
fn side(event: &OddsEvent, name: &str) -> Option<Side> {
    if name == event.home_team {
        Some(Side::Home)
    } else if name == event.away_team {
        Some(Side::Away)
    } else {
        match name.to_ascii_lowercase().as_str() {
            "draw" | "tie" => Some(Side::Draw),
            "over" => Some(Side::Over),
            "under" => Some(Side::Under),
            _ => None,
        }
    }
}

fn quotes(event: &OddsEvent, market: &Market, format: OddsFormat) -> Result<Vec<Quote>, String> {
    let mut quotes: Vec<Quote> = Vec::with_capacity(market.outcomes.len());
    for o in &market.outcomes {
        let side: Side = side(event, &o.name)
            .ok_or_else(|| format!("outcome `{}` matches neither team", o.name))?;
        if quotes.iter().any(|q| q.side == side) {
            return Err(format!("outcome `{}` listed twice", o.name));
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
/// price or outcome is rejected alone (its overround would be wrong).
pub fn book_markets(
    payload: &OddsPayload,
    event_time: DateTime<Utc>,
) -> (Vec<BookMarket>, Vec<Rejection>) {
    let event: &OddsEvent = &payload.event;
    let mut good: Vec<BookMarket> = Vec::new();
    let mut rejected: Vec<Rejection> = Vec::new();
    for b in &event.bookmakers {
        let b: &Bookmaker = b;
        for m in &b.markets {
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
}

/// Keyed windows over bookmaker markets.
pub struct OddsProcessor {
    windows: Windowed<OddsKey, OddsWindow>,
}

impl OddsProcessor {
    pub fn new(spec: WindowSpec, allowed_lateness: TimeDelta) -> Result<Self, WindowError> {
        Ok(Self {
            windows: Windowed::new(spec, allowed_lateness, OddsWindow::default())?,
        })
    }

    pub fn windows(&self) -> &Windowed<OddsKey, OddsWindow> {
        &self.windows
    }

    /// Everything accumulated so far, for a checkpoint.
    pub fn snapshot(&self) -> WindowedSnapshot<OddsKey, OddsWindow> {
        self.windows.snapshot()
    }

    /// Continues from a checkpointed [`OddsProcessor::snapshot`].
    pub fn restore(&mut self, snapshot: WindowedSnapshot<OddsKey, OddsWindow>) {
        self.windows.restore(snapshot);
    }

    /// Processes one decoded message.
    pub fn handle(&mut self, envelope: &Envelope<OddsPayload>) -> OddsBatch {
        let (markets, rejected) = book_markets(&envelope.payload, envelope.event_time);
        let mut batch: OddsBatch = OddsBatch {
            best: best_prices(&markets),
            rejected,
            ..OddsBatch::default()
        };
        for m in &markets {
            if let Err(late) =
                self.windows
                    .push(OddsKey::of(m), m.time, envelope.ingest_time, m.clone())
            {
                batch.late.push(late);
            }
        }
        batch.latest = markets;
        batch.closed = self.windows.drain_closed();
        batch
    }

    /// Emits every open window (shutdown, end of a replay).
    pub fn flush(&mut self) -> Vec<Closed<OddsKey, OddsWindowOutput>> {
        self.windows.flush_all()
    }
}

#[cfg(test)]
mod tests;
