"""silver.games and silver.game_periods from one sports day's bronze.games
rows: the newest load of each game, finals only, ids in BetFlow's
`{sport}:{id}` form, periods from the longer line score
(docs/glue.md#silver-games)."""

from pyspark.sql import Window
from pyspark.sql import functions as F

from betflow_glue import arguments, bronze_input, read_json, session, write_output

GAMES = "silver.games"
PERIODS = "silver.game_periods"


def points(column):
    """A comma-separated line score as a list of ints (empty parts dropped,
    an unreadable part null). SQL, so Spark 3.5 (Glue 5.0) and 4 agree."""
    return F.expr(
        f"transform(filter(split(coalesce({column}, ''), ','), p -> p != ''), "
        "p -> try_cast(trim(p) AS INT))"
    )


def main():
    args = arguments()
    spark = session("betflow-" + GAMES)
    schemas = read_json(spark, args["schemas"])
    manifest = read_json(spark, args["input_manifest"])
    bronze = bronze_input(spark, manifest, schemas, "bronze.games")
    newest = Window.partitionBy("sport", "game_id").orderBy(F.col("ingested_at").desc())
    latest = (
        bronze.withColumn("_n", F.row_number().over(newest))
        .where((F.col("_n") == 1) & (F.col("state") == "post"))
        .withColumn("_home", points("home_linescores"))
        .withColumn("_away", points("away_linescores"))
        .withColumn("_periods", F.greatest(F.size("_home"), F.size("_away")))
        .withColumn("_regulation", F.when(F.col("sport") == "nhl", 3).otherwise(4))
        .cache()
    )

    def sid(prefix, c):
        return F.concat(prefix, F.lit(":"), F.col(c))

    games = latest.select(
        "sport",
        "sports_date",
        sid(F.col("sport"), "game_id").alias("game_id"),
        "season",
        "season_type",
        "week",
        "start_time",
        F.col("status_name").alias("status"),
        sid(F.col("sport"), "home_team_id").alias("home_team_id"),
        sid(F.col("sport"), "away_team_id").alias("away_team_id"),
        "home_team_name",
        "away_team_name",
        "home_score",
        "away_score",
        (F.col("home_score") + F.col("away_score")).alias("total_points"),
        (F.col("home_score") - F.col("away_score")).alias("home_margin"),
        F.col("_periods").cast("int").alias("periods"),
        (F.col("_periods") > F.col("_regulation")).alias("overtime"),
        sid(F.lit("espn"), "venue_id").alias("venue_id"),
        "venue_name",
        "venue_indoor",
        "attendance",
        "neutral_site",
        F.lit(manifest["run_id"]).alias("run_id"),
    ).orderBy("sport", "start_time", "game_id")

    periods = (
        latest.where(F.col("_periods") > 0)
        .select(
            "sport",
            "sports_date",
            sid(F.col("sport"), "game_id").alias("game_id"),
            "_home",
            "_away",
            "_regulation",
            F.posexplode(F.sequence(F.lit(1), F.col("_periods"))).alias("_i", "period"),
        )
        .select(
            "sport",
            "sports_date",
            "game_id",
            F.col("period").cast("int").alias("period"),
            (F.col("period") > F.col("_regulation")).alias("is_overtime"),
            F.expr("try_element_at(_home, period)").alias("home_points"),
            F.expr("try_element_at(_away, period)").alias("away_points"),
        )
        .orderBy("sport", "game_id", "period")
    )
    write_output(spark, games, GAMES, args, schemas)
    write_output(spark, periods, PERIODS, args, schemas)
    spark.stop()


if __name__ == "__main__":
    main()
