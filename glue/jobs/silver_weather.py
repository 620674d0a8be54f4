"""silver.weather: one sports day's bronze.weather rows, the newest load of
each (sport, venue, hour), venue ids in BetFlow's `espn:{id}` form
(docs/glue.md#silver-weather)."""

from pyspark.sql import Window
from pyspark.sql import functions as F

from betflow_glue import arguments, bronze_input, read_json, session, write_output

TABLE = "silver.weather"


def main():
    args = arguments()
    spark = session("betflow-" + TABLE)
    schemas = read_json(spark, args["schemas"])
    manifest = read_json(spark, args["input_manifest"])
    bronze = bronze_input(spark, manifest, schemas, "bronze.weather")
    newest = Window.partitionBy("sport", "venue_id", "observed_at").orderBy(F.col("ingested_at").desc())
    df = (
        bronze.withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        .select(
            "sport",
            "sports_date",
            F.concat(F.lit("espn:"), F.col("venue_id")).alias("venue_id"),
            "observed_at",
            "temperature_c",
            "wind_speed_ms",
            "wind_deg",
            "precipitation_mm",
            "humidity_pct",
            F.lit(None).cast("string").alias("condition"),
            F.lit(manifest["run_id"]).alias("run_id"),
        )
        .orderBy("sport", "venue_id", "observed_at")
    )
    write_output(spark, df, TABLE, args, schemas)
    spark.stop()


if __name__ == "__main__":
    main()
