//! The nightly batch DAGs: one per data family (games, odds, weather, news) that
//! pulls the previous sports day per sport into the raw lake and models it
//! bronze → silver behind a quality gate, and one that builds the gold marts
//! and copies them to the serving schema.
//!
//! The four loads run on cron in New York time with catchup from the start of
//! the 2024-25 seasons, so `betflow backfill` and a fresh install fill history
//! the same way the nightly run fills yesterday. The fetch tasks sit in one
//! pool per external API, so many dates in flight never exceed a source's
//! limits. Each load's quality gate updates its silver asset for the sports
//! day, and the marts run once all four silver tables of a day are updated
//! (docs/assets.md), whether by the nightly runs or a backfill.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use orchestrator::dag::DagError;
use orchestrator::{
    AssetCondition, Dag, DagBuilder, Deadline, GroupOutput, Node, Output, RetryPolicy, TaskSpec,
    TriggerRule, TypedSpec,
};

use crate::assets::{iceberg, serving};

use crate::ingest::{
    map_sport_group, FetchNews, FetchOddsSnapshots, FetchOpenMeteo, FetchScoreboard,
    SelectOutdoorVenues, Settings, SharedSettings, ValidateNews, ValidateOddsSnapshots,
    ValidateScoreboard, ValidateWeather, SPORT_GROUP,
};
use crate::sensors::UpstreamDay;
use crate::transform;
use crate::transform::gold_tasks::{self, BuildGold, GoldGate, PublishServing};
use crate::transform::spark::task::{Layer, Runner, SparkTransform};
use crate::transform::tasks::{BuildSilver, LoadBronze, SilverGate};
use crate::{
    all_sports_param, DataKind, Sport, ESPN_POOL, NEWS_POOL, ODDS_POOL, SPORTS, TIMEZONE,
    WEATHER_POOL,
};
use lakehouse::glue_job::GlueJob;

pub const HISTORICAL_GAMES: &str = "historical_games_daily";
pub const HISTORICAL_ODDS: &str = "historical_odds_daily";
pub const WEATHER: &str = "weather_daily";
pub const NEWS: &str = "news_daily";
pub const GOLD_MARTS: &str = "gold_marts_nightly";

/// The batch DAGs of a deployment's settings, as build results so a broken
/// definition reports its error.
pub fn dags(settings: SharedSettings) -> Vec<Result<Dag, DagError>> {
    vec![
        historical_games_daily(settings.clone()),
        historical_odds_daily(settings.clone()),
        weather_daily(settings.clone()),
        news_daily(settings.clone()),
        gold_marts_nightly(settings),
    ]
}

/// Sources, the lake and the catalog fail transiently: retry twice, after
/// 30 s then 60 s (capped at 10 min).
pub const RETRY: RetryPolicy = RetryPolicy {
    retries: 2,
    delay: Duration::from_secs(30),
    exponential: true,
    max_delay: Duration::from_secs(600),
};

/// A day of one family is small; a task running this long is stuck.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Runs of a nightly DAG in flight at once during catchup or a backfill.
pub const MAX_ACTIVE_RUNS: u32 = 3;

/// The first sports day loaded: the 2024-25 seasons (NFL week 1 and the NBA
/// and NHL seasons all start after it; college football's week 1 is in it).
pub fn start_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 1, 0, 0, 0)
        .single()
        .expect("a valid UTC date")
}

/// When a nightly load must be done, New York time: by 07:30, so the marts
/// can build on them by 09:30 ([`MARTS_DUE_AFTER`]).
const LOADS_DUE: (u32, u32) = (7, 30);

/// The deadline of a daily `cron` (`M H * * *`) run due at `due` (hour,
/// minute) the day after its logical date: Airflow's logical date of a
/// daily run is the start of its interval, a day before it runs. Counted in
/// absolute hours, so on the two days a year the clocks change it is an
/// hour early or late (docs/alerts.md#deadlines).
fn due_next_day(cron: &str, due: (u32, u32)) -> Deadline {
    let mut fields = cron.split_whitespace();
    let minute: u64 = fields.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let hour: u64 = fields.next().and_then(|h| h.parse().ok()).unwrap_or(0);
    let start: u64 = hour * 3600 + minute * 60;
    let due: u64 = u64::from(due.0) * 3600 + u64::from(due.1) * 60;
    Deadline::after_logical_date(Duration::from_secs(86_400 + due.saturating_sub(start)))
}

/// The settings every nightly load shares: a daily cron, catchup, and the
/// sports day of its data interval as the partition of the assets it updates.
fn nightly(id: &str, description: &str, cron: &str, tags: &[&str]) -> DagBuilder {
    batch_dag(id, description, tags)
        .deadline(due_next_day(cron, LOADS_DUE))
        .schedule(cron, TIMEZONE)
        .start_date(start_date())
        .catchup(true)
        .asset_partition(|interval| crate::sports_day(interval.start).to_string())
}

/// What every batch DAG shares, however it is scheduled.
fn batch_dag(id: &str, description: &str, tags: &[&str]) -> DagBuilder {
    Dag::builder(id)
        .description(description)
        .max_active_runs(MAX_ACTIVE_RUNS)
        .default_retry(RETRY)
        .execution_timeout(EXECUTION_TIMEOUT)
        .tags(tags)
        .param("sports", all_sports_param())
}

/// A data-quality gate: a failing check is a data problem, not a transient
/// one, so it fails at once (no retries) and stops everything downstream.
fn gate_spec(spec: TaskSpec) -> TaskSpec {
    spec.retry_policy(RetryPolicy {
        retries: 0,
        ..RETRY
    })
}

/// How one data family is pulled, per sport, and modelled.
struct Family {
    /// `games`, `odds`, `weather` or `news`: lake path segment and table suffix.
    name: &'static str,
    family: DataKind,
    /// Id of the fetch task, mapped over the run's sports.
    fetch: &'static str,
    /// The source's pool: each fetch instance takes one slot.
    pool: &'static str,
    /// What the fetch does for each sport.
    describe_fetch: &'static str,
    /// What the fetch reads for one sport (its path, key or feeds).
    sport_source: fn(&Sport) -> String,
    validate: &'static str,
    bronze: &'static str,
    silver: &'static str,
    quality: &'static str,
}

impl Family {
    /// The fetch task's doc: what it fetches, and where it stores it.
    fn fetch_doc(&self) -> String {
        format!(
            "{} ({}); one instance per sport of the run's `sports` param; stores the untouched bytes (gzip) at raw/historical/{{sport}}/{}/date=YYYY-MM-DD/, replacing that date on a re-run",
            self.describe_fetch,
            SPORTS
                .iter()
                .map(|s| format!("{}: {}", s.key, (self.sport_source)(s)))
                .collect::<Vec<String>>()
                .join("; "),
            self.name
        )
    }

    /// The validate task's doc.
    fn validate_doc(&self) -> String {
        format!("{}; one instance per fetched sport", self.validate)
    }
}

/// Id (in the [`SPORT_GROUP`]) of every family's validate task.
pub const VALIDATE: &str = "validate";

/// Adds the shape every family shares and returns its quality gate:
///
/// ```text
/// after? >> sport.{fetch} >> sport.validate      [one of each per sport]
///        >> transform.bronze_{family} >> transform.silver_{family} >> quality.silver_{family}
/// ```
///
/// `fetch` makes the family's fetch spec from its id, doc and pool and
/// `validate` its validate spec from the fetch's output, its id and doc;
/// both go in the [`SPORT_GROUP`], mapped over the sports, so a sport's
/// validate waits for and reads that sport's fetch alone. The raw write
/// happens inside the fetch, so the untouched bytes are stored before
/// anything interprets them. `after`, when given, is upstream of the fetch.
fn ingest<F, V>(
    b: &mut DagBuilder,
    f: &Family,
    settings: &SharedSettings,
    after: Option<&Node>,
    fetch: impl FnOnce(&str, String, &str) -> TypedSpec<F>,
    validate: impl FnOnce(Output<F>, &str, String) -> TypedSpec<V>,
) -> Node {
    let bronze_id = format!("bronze_{}", f.name);
    let silver_id = format!("silver_{}", f.name);
    // An empty `sports` param skips the fetch and validate; the fan-in
    // still runs, on no sports: `none_failed`.
    let bronze_spec = match spark_transform(settings, f.family, Layer::Bronze) {
        Some((task, engine)) => task.spec(&bronze_id, format!("{engine}: {}", f.bronze)),
        None => match settings.engine {
            transform::Engine::Glue => GlueJob::new(glue_config(settings, &bronze_id))
                .run_arg(SPORTS_DAY_ARG, glue_sports_day)
                .spec(&bronze_id, format!("AWS Glue job run: {}", f.bronze)),
            _ => LoadBronze::new(f.family, settings.clone()).spec(&bronze_id, f.bronze),
        },
    };
    map_sport_group(b);
    let fetched: GroupOutput<F> =
        b.mapped_group_add(SPORT_GROUP, fetch(f.fetch, f.fetch_doc(), f.pool));
    b.mapped_group_add(
        SPORT_GROUP,
        validate(fetched.each(), VALIDATE, f.validate_doc()),
    );
    let validate = b.group(SPORT_GROUP);
    if let Some(up) = after {
        b.edge(up, &validate);
    }
    let bronze = b.group_task(
        "transform",
        bronze_spec
            .trigger_rule(TriggerRule::NoneFailed)
            .outlets([iceberg(&format!("bronze.{}", f.name))]),
    );
    b.edge(&validate, &bronze);
    let silver_spec = match spark_transform(settings, f.family, Layer::Silver) {
        Some((task, engine)) => task.spec(&silver_id, format!("{engine}: {}", f.silver)),
        None => match settings.engine {
            transform::Engine::Glue => GlueJob::new(glue_config(settings, &silver_id))
                .run_arg(SPORTS_DAY_ARG, glue_sports_day)
                .spec(&silver_id, format!("AWS Glue job run: {}", f.silver)),
            _ => BuildSilver::new(f.family, settings.clone()).spec(&silver_id, f.silver),
        },
    };
    let silver_tables = silver_tables(f.family);
    let silver = b.group_task(
        "transform",
        silver_spec.inlets([iceberg(&format!("bronze.{}", f.name))]),
    );
    // The silver tables count as updated once they passed their gate: that
    // is what the marts wait for.
    let quality = b.group_task(
        "quality",
        gate_spec(SilverGate::new(f.family, settings.clone()).spec(&silver_id, f.quality))
            .outlets(silver_tables.iter().map(|t| iceberg(t))),
    );
    b.chain(&[&bronze, &silver, &quality]);
    quality
}

/// The silver tables a family's transform writes.
fn silver_tables(family: DataKind) -> &'static [&'static str] {
    match family {
        DataKind::Games => &["silver.games", "silver.game_periods"],
        DataKind::Odds => &["silver.odds"],
        DataKind::Weather => &["silver.weather"],
        DataKind::News => &["silver.news"],
    }
}

const GAMES: Family = Family {
    name: "games",
    family: DataKind::Games,
    fetch: "fetch_scoreboard",
    pool: ESPN_POOL,
    describe_fetch: "fetch the sport's ESPN scoreboard /apis/site/v2/sports/{league}/scoreboard?dates=YYYYMMDD (final games of the day)",
    sport_source: |s| s.espn_path.to_owned(),
    validate: "validate the scoreboard JSON (ids, start times, status, teams, scores, venue); bad events go to the dead-letter table",
    bronze: "load the day's raw game payloads into Iceberg bronze.games",
    silver: "model silver.games (finals, canonical team/venue ids, margins, overtime) and silver.game_periods",
    quality: "quality gate on silver.games: schema, unique game_id, non-null keys, scores >= 0, period scores sum to the final score, row count vs the previous day",
};

const ODDS: Family = Family {
    name: "odds",
    family: DataKind::Odds,
    fetch: "fetch_odds_snapshots",
    pool: ODDS_POOL,
    describe_fetch: "fetch the sport's The Odds API snapshots /v4/historical/sports/{sport}/odds around the day's games (h2h, spreads, totals; us)",
    sport_source: |s| s.odds_api_key.to_owned(),
    validate: "validate the snapshot JSON (timestamp, events, bookmakers, markets; h2h has two priced outcomes); bad records go to the dead-letter table",
    bronze: "load the day's raw odds snapshots into Iceberg bronze.odds",
    silver: "model silver.odds: dedupe, map events to games, implied and no-vig probability, overround, opening and closing lines",
    quality: "quality gate on silver.odds: prices in (-100000, 100000) and non-zero, decimal > 1, implied probability in (0, 1), h2h has both sides, unique keys; vig outside (-5%, 30%) and unmapped events warn",
};

const WEATHER_FAMILY: Family = Family {
    name: "weather",
    family: DataKind::Weather,
    fetch: "fetch_open_meteo",
    pool: WEATHER_POOL,
    describe_fetch: "fetch Open-Meteo /v1/archive hourly history (temperature, precipitation, wind, humidity) at the sport's outdoor venues of the day",
    sport_source: |s| format!("{} venues", s.key),
    validate: "validate the Open-Meteo JSON (hourly arrays of one length, units, coordinates); bad records go to the dead-letter table",
    bronze: "load the day's raw weather into Iceberg bronze.weather",
    silver: "model silver.weather per venue and hour",
    quality: "quality gate on silver.weather: non-null keys, plausible ranges, one row per venue and hour",
};

const NEWS_FAMILY: Family = Family {
    name: "news",
    family: DataKind::News,
    fetch: "fetch_news",
    pool: NEWS_POOL,
    describe_fetch: "fetch the sport's news feeds (RSS or Atom), or offline the recorded NewsAPI headlines moved onto the day",
    sport_source: |s| {
        format!(
            "BETFLOW_NEWS_FEEDS_{}, default {}",
            s.key.to_ascii_uppercase(),
            s.news_feeds.join(", ")
        )
    },
    validate: "validate the feeds article by article (link, date, title); articles of other days are counted and left out, bad ones go to the dead-letter table",
    bronze: "load the day's articles into Iceberg bronze.news",
    silver: "model silver.news: one row per article and team it names (name, location or abbreviation; null when none), lexicon sentiment in (-1, 1)",
    quality: "quality gate on silver.news: schema, unique (article, team), non-null keys, sentiment in (-1, 1), teams of the sport; articles naming no team warn",
};

/// ESPN scoreboards per sport → raw → bronze/silver games, with the
/// source and lake settings read from the environment when tasks run.
pub fn historical_games_daily(settings: SharedSettings) -> Result<Dag, DagError> {
    let mut b = nightly(
        HISTORICAL_GAMES,
        "Final games of the previous sports day from ESPN, per sport, into raw, bronze and silver games",
        "0 6 * * *",
        &["batch", "games", "espn"],
    );
    ingest(
        &mut b,
        &GAMES,
        &settings,
        None,
        |id, doc, pool| FetchScoreboard::new(settings.clone()).spec(id, doc, pool),
        |fetched, id, doc| ValidateScoreboard::new(fetched, settings.clone()).spec(id, doc),
    );
    b.build()
}

/// Historical odds snapshots per sport, once the day's games are in silver
/// (odds events are mapped to games) → raw → bronze/silver odds.
pub fn historical_odds_daily(settings: SharedSettings) -> Result<Dag, DagError> {
    let mut b = nightly(
        HISTORICAL_ODDS,
        "Historical odds snapshots of the previous sports day from The Odds API, per sport, into raw, bronze and silver odds",
        "30 6 * * *",
        &["batch", "odds", "the-odds-api"],
    );
    let wait = b.task(
        UpstreamDay::new(HISTORICAL_GAMES, "quality.silver_games").spec(
            "wait_for_games",
            format!("wait for the day's silver.games ({HISTORICAL_GAMES} quality.silver_games), so odds events map to games"),
        ),
    );
    ingest(
        &mut b,
        &ODDS,
        &settings,
        Some(&wait),
        |id, doc, pool| FetchOddsSnapshots::new(settings.clone()).spec(id, doc, pool),
        |fetched, id, doc| ValidateOddsSnapshots::new(fetched, settings.clone()).spec(id, doc),
    );
    b.build()
}

/// Hourly weather history at the day's outdoor venues (weather does not
/// matter indoors), so it waits for the day's games to know the venues.
pub fn weather_daily(settings: SharedSettings) -> Result<Dag, DagError> {
    let mut b = nightly(
        WEATHER,
        "Open-Meteo weather history at the previous sports day's outdoor venues into raw, bronze and silver weather",
        "15 6 * * *",
        &["batch", "weather", "open-meteo"],
    );
    let wait = b.task(
        UpstreamDay::new(HISTORICAL_GAMES, "quality.silver_games").spec(
            "wait_for_games",
            format!("wait for the day's games ({HISTORICAL_GAMES} quality.silver_games), whose outdoor venues get weather"),
        ),
    );
    let venues = b.add(SelectOutdoorVenues::new(settings.clone()).spec(
        "select_outdoor_venues",
        "select, per sport, the outdoor venues (ESPN venue.indoor = false) of the day's valid games in the raw lake, with coordinates from the venue seed table".to_owned(),
    ));
    b.edge(&wait, &venues.node());
    ingest(
        &mut b,
        &WEATHER_FAMILY,
        &settings,
        Some(&venues.node()),
        |id, doc, pool| FetchOpenMeteo::new(venues.clone(), settings.clone()).spec(id, doc, pool),
        |fetched, id, doc| ValidateWeather::new(fetched, settings.clone()).spec(id, doc),
    );
    b.build()
}

/// The sports' news feeds → raw → bronze/silver news with team and
/// sentiment. Teams come from the bundled ESPN captures, so it waits for
/// no other DAG.
pub fn news_daily(settings: SharedSettings) -> Result<Dag, DagError> {
    let mut b = nightly(
        NEWS,
        "News articles of the previous sports day from the sports' RSS/Atom feeds, per sport, into raw, bronze and silver news with team and sentiment",
        "45 6 * * *",
        &["batch", "news", "rss"],
    );
    ingest(
        &mut b,
        &NEWS_FAMILY,
        &settings,
        None,
        |id, doc, pool| FetchNews::new(settings.clone()).spec(id, doc, pool),
        |fetched, id, doc| ValidateNews::new(fetched, settings.clone()).spec(id, doc),
    );
    b.build()
}

/// Gold dimensions: (id, the silver tables it reads, what it builds).
const DIMS: &[(&str, &[&str], &str)] = &[
    (
        "dim_teams",
        &["silver.games"],
        "build gold.dim_teams (slowly changing: league, name, abbreviation, location, aliases, valid_from/valid_to)",
    ),
    (
        "dim_venues",
        &["silver.games"],
        "build gold.dim_venues (name, city, state, lat, lon, indoor, capacity)",
    ),
    (
        "dim_bookmakers",
        &["silver.odds"],
        "build gold.dim_bookmakers from the bookmakers seen in silver odds",
    ),
    (
        "dim_markets",
        &["silver.odds"],
        "build gold.dim_markets (h2h, spreads, totals and their outcomes)",
    ),
    (
        "dim_dates",
        &[],
        "build gold.dim_dates (calendar, sports day, season and season type per league)",
    ),
];

/// Gold marts: (id, the dims it joins, the silver tables it reads, what it builds).
type Mart = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);
const MARTS: &[Mart] = &[
    (
        "market_efficiency",
        &["dim_teams", "dim_bookmakers", "dim_markets"],
        &["silver.odds", "silver.games"],
        "build gold.market_efficiency (game x bookmaker x market: avg/min/max vig, efficiency rating, favourite flips, updates)",
    ),
    (
        "odds_movement",
        &["dim_teams", "dim_bookmakers", "dim_markets"],
        &["silver.odds", "silver.games"],
        "build gold.odds_movement (opening and closing line, movement, volatility, time of the biggest move)",
    ),
    (
        "bookmaker_comparison",
        &["dim_bookmakers", "dim_markets", "dim_dates"],
        &["silver.odds"],
        "build gold.bookmaker_comparison (bookmaker x sport x season: avg vig, share of best prices, deviation from consensus, CLV of openers)",
    ),
    (
        "closing_line_value",
        &["dim_bookmakers", "dim_markets"],
        &["silver.odds"],
        "build gold.closing_line_value (price vs the closing no-vig consensus)",
    ),
    (
        "team_trends",
        &["dim_teams", "dim_markets", "dim_dates"],
        &["silver.games", "silver.odds"],
        "build gold.team_trends (win, cover and over rates, margins, home/away, by season, rolling 5 and 10 games)",
    ),
    (
        "scoring_patterns",
        &["dim_teams"],
        &["silver.games", "silver.game_periods"],
        "build gold.scoring_patterns (points and share of points per period, per team and league average)",
    ),
    (
        "weather_impact",
        &["dim_venues", "dim_markets", "dim_dates"],
        &["silver.weather", "silver.games", "silver.odds"],
        "build gold.weather_impact (outdoor games: correlations of weather with totals, wind buckets, over rate)",
    ),
    (
        "news_sentiment_daily",
        &["dim_teams"],
        &["silver.news", "silver.odds"],
        "build gold.news_sentiment_daily (team x day: articles, mean sentiment, consensus win probability move in the 24 h after the first article)",
    ),
];

/// The silver tables whose update, all for the same sports day, starts the
/// marts: one per load DAG (its quality gate's outlet).
pub const MARTS_SCHEDULE: [&str; 4] = [
    "silver.games",
    "silver.odds",
    "silver.weather",
    "silver.news",
];

/// How long after the silver tables of a day are all in the marts must be
/// built and published.
pub const MARTS_DUE_AFTER: Duration = Duration::from_secs(2 * 3600);

/// Dims, then the marts that join them, then one quality gate over gold,
/// then the copy to the serving schema the dashboards read. Runs when the
/// four silver tables of one sports day have passed their gates (an asset
/// schedule, not a cron and sensors). Full rebuilds of shared tables: one
/// run at a time.
pub fn gold_marts_nightly(settings: SharedSettings) -> Result<Dag, DagError> {
    let mut b = batch_dag(
        GOLD_MARTS,
        "Gold dimensions and marts from silver games, odds, weather and news, gated by quality checks and published to the serving schema",
        &["batch", "gold", "marts"],
    )
    .timezone(TIMEZONE)
    .schedule_on(AssetCondition::all(MARTS_SCHEDULE.map(iceberg)))
    .deadline(Deadline::after_queued(MARTS_DUE_AFTER))
    .max_active_runs(1);
    let gold = |id: &str| gold_tasks::table(id).unwrap_or_else(|| panic!("no gold table `{id}`"));
    for (id, silver, what) in DIMS {
        b.group_task(
            "dims",
            BuildGold::new(gold(id), settings.clone())
                .spec(id, *what)
                .inlets(silver.iter().map(|t| iceberg(t)))
                .outlets([iceberg(&format!("gold.{id}"))]),
        );
    }
    let task = |id: &str| Node::Task(id.to_owned());
    for (id, dims, silver, what) in MARTS {
        let mart = b.group_task(
            "marts",
            BuildGold::new(gold(id), settings.clone())
                .spec(id, *what)
                .inlets(silver.iter().map(|t| iceberg(t)))
                .outlets([iceberg(&format!("gold.{id}"))]),
        );
        for dim in *dims {
            b.edge(&task(&format!("dims.{dim}")), &mart);
        }
    }
    let check = b.group_task(
        "quality",
        gate_spec(GoldGate::new(settings.clone()).spec(
            "gold",
            "quality gate on gold: schema, unique and non-null keys per grain, prices > 1, rates in [0, 1]; vig outside (-5%, 30%) warns",
        )),
    );
    let marts = b.group("marts");
    b.edge(&marts, &check);
    let tables = DIMS.iter().map(|d| d.0).chain(MARTS.iter().map(|m| m.0));
    let publish = b.task(
        PublishServing::new(settings.clone())
            .spec(
                "publish_serving",
                "copy each gold table into Postgres serving.gold_{table}, replacing its rows in one transaction",
            )
            .outlets(tables.map(|t| serving(&format!("gold_{t}")))),
    );
    b.edge(&check, &publish);
    b.build()
}

/// The transform as a run of BetFlow's Spark script, when the engine is
/// Spark or Glue and a script exists, with words for the task's doc.
fn spark_transform(
    settings: &SharedSettings,
    family: DataKind,
    layer: Layer,
) -> Option<(SparkTransform, &'static str)> {
    let key = format!("{}_{}", layer.name(), family.as_str());
    let (runner, engine) = match settings.engine {
        transform::Engine::Local => return None,
        transform::Engine::Spark => (
            Runner::Local(settings.spark.clone()?),
            "BetFlow's Spark job (local spark-submit)",
        ),
        transform::Engine::Glue => (
            Runner::Glue(
                GlueJob::new(glue_config(settings, &key)).run_arg(SPORTS_DAY_ARG, glue_sports_day),
            ),
            "BetFlow's Spark job as an AWS Glue job run",
        ),
    };
    SparkTransform::new(family, layer, settings.clone(), runner).map(|t| (t, engine))
}

/// The Glue argument that tells a job script which sports day to model.
pub const SPORTS_DAY_ARG: &str = "--sports_day";

/// The Glue job of transform task `key` (`bronze_games`, …), resolved with
/// the settings when the engine is Glue.
fn glue_config(settings: &Settings, key: &str) -> lakehouse::glue_job::GlueConfig {
    settings.glue_jobs.get(key).cloned().unwrap_or_else(|| {
        panic!("no Glue job resolved for `{key}`: Settings::resolve resolves every transform's")
    })
}

/// The sports day of a Glue job run's try.
pub fn glue_sports_day(ctx: &orchestrator::TaskContext) -> String {
    crate::sports_day(ctx.data_interval.start).to_string()
}
