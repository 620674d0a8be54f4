"""silver.odds: one sports day's bronze.odds prices, the newest load of
each price, mapped to the games modelled so far, with implied and no-vig
probabilities, overround, and opening and closing lines
(docs/glue.md#silver-odds).

The event → game map: an event's home and away names resolve to team ids
through every name the teams were listed under in silver.games; among the
games of the same sport and teams, the one starting nearest the event's
commence time within 12 hours wins (the lower game id on a tie). An event
takes the commence time and names of its latest snapshot.
"""

from pyspark.sql import Window
from pyspark.sql import functions as F

from betflow_glue import arguments, bronze_input, read_json, session, write_output

TABLE = "silver.odds"
TOLERANCE_HOURS = 12


def event_games(latest, games):
    """(sport, event_id, game_id) for every event that maps to a game."""
    last = Window.partitionBy("sport", "event_id").orderBy(F.col("snapshot_time").desc())
    events = (
        latest.select("sport", "event_id", "snapshot_time", "commence_time", "home_team", "away_team")
        .withColumn("_n", F.row_number().over(last))
        .where(F.col("_n") == 1)
        .drop("_n", "snapshot_time")
    )
    names = (
        games.select("sport", F.col("home_team_name").alias("team_name"), F.col("home_team_id").alias("team_id"))
        .unionByName(
            games.select("sport", F.col("away_team_name").alias("team_name"), F.col("away_team_id").alias("team_id"))
        )
        .dropna()
        .distinct()
    )

    def resolve(df, side):
        by_name = names.select(
            "sport",
            F.col("team_name").alias(f"{side}_team"),
            F.col("team_id").alias(f"{side}_team_id"),
        )
        return df.join(by_name, ["sport", f"{side}_team"], "inner")

    resolved = resolve(resolve(events, "home"), "away")
    candidates = games.select("sport", "home_team_id", "away_team_id", "game_id", "start_time")
    gap = F.abs(F.unix_micros("commence_time") - F.unix_micros("start_time"))
    nearest = Window.partitionBy("sport", "event_id").orderBy("_gap", "game_id")
    return (
        resolved.join(candidates, ["sport", "home_team_id", "away_team_id"], "inner")
        .withColumn("_gap", gap)
        .where(F.col("_gap") <= TOLERANCE_HOURS * 3600 * 1_000_000)
        .withColumn("_n", F.row_number().over(nearest))
        .where(F.col("_n") == 1)
        .select("sport", "event_id", F.col("game_id").alias("_game_id"))
    )


def main():
    args = arguments()
    spark = session("betflow-" + TABLE)
    schemas = read_json(spark, args["schemas"])
    manifest = read_json(spark, args["input_manifest"])
    bronze = bronze_input(spark, manifest, schemas, "bronze.odds")
    games = bronze_input(spark, manifest, schemas, "silver.games", same_day=False)
    price_key = ["event_id", "bookmaker", "market", "outcome", "snapshot_time"]
    newest = Window.partitionBy(*price_key).orderBy(F.col("ingested_at").desc())
    latest = (
        bronze.withColumn("_n", F.row_number().over(newest)).where(F.col("_n") == 1).drop("_n").cache()
    )
    mapped = latest.join(event_games(latest, games), ["sport", "event_id"], "left")
    book_market = Window.partitionBy("event_id", "bookmaker", "market", "snapshot_time")
    line = Window.partitionBy("event_id", "bookmaker", "market", "outcome")
    df = (
        mapped.withColumn("implied_prob", F.lit(1.0) / F.col("price_decimal"))
        .withColumn("is_pre_game", F.col("snapshot_time") <= F.col("commence_time"))
        .withColumn("_book_sum", F.sum("implied_prob").over(book_market))
        .withColumn("overround", F.col("_book_sum") - F.lit(1.0))
        .withColumn("no_vig_prob", F.col("implied_prob") / F.col("_book_sum"))
        .withColumn("is_opening", F.col("snapshot_time") == F.min("snapshot_time").over(line))
        .withColumn(
            "is_closing",
            F.coalesce(
                F.col("snapshot_time")
                == F.max(F.when(F.col("is_pre_game"), F.col("snapshot_time"))).over(line),
                F.lit(False),
            ),
        )
        .select(
            "sport",
            "sports_date",
            "event_id",
            F.col("_game_id").alias("game_id"),
            "commence_time",
            "home_team",
            "away_team",
            "bookmaker",
            "market",
            "outcome",
            "price_american",
            "price_decimal",
            "point",
            "implied_prob",
            "overround",
            "no_vig_prob",
            F.col("last_update").alias("bookmaker_last_update"),
            "snapshot_time",
            "is_pre_game",
            "is_opening",
            "is_closing",
            F.lit(manifest["run_id"]).alias("run_id"),
        )
        .orderBy(*price_key)
    )
    write_output(spark, df, TABLE, args, schemas)
    spark.stop()


if __name__ == "__main__":
    main()
