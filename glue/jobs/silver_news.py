"""silver.news: one sports day's articles, the newest load of each
(sport, item), one row per team the headline and summary name (or one
row without a team), with the lexicon sentiment score
(docs/glue.md#silver-news).

Team phrases and the lexicon come from `news.json`, exported from the Rust
matcher and lexicon, so an article gets the same teams and score as in
the polars engine and the live stream.
"""

from datetime import datetime, timedelta, timezone

from pyspark.sql import Window
from pyspark.sql import functions as F

from betflow_glue import arguments, bronze_input, news_rules, read_json, schema, session, write_output
from betflow_news import TeamMatcher, sentiment

TABLE = "silver.news"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def main():
    args = arguments()
    spark = session("betflow-" + TABLE)
    schemas = read_json(spark, args["schemas"])
    manifest = read_json(spark, args["input_manifest"])
    rules = news_rules(spark, args)
    run_id = manifest["run_id"]
    bronze = bronze_input(spark, manifest, schemas, "bronze.news")
    newest = Window.partitionBy("sport", "item_id").orderBy(F.col("ingested_at").desc())
    latest = (
        bronze.withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        # Times cross into Python as microseconds: a Row's datetime would
        # be read in the Python process's local zone.
        .select(
            "sport",
            "sports_date",
            "item_id",
            F.unix_micros("published_at").alias("published_us"),
            "outlet",
            "title",
            "summary",
            "url",
        )
    )
    matchers = {}

    def rows(r):
        matcher = matchers.get(r.sport)
        if matcher is None:
            matcher = matchers[r.sport] = TeamMatcher(rules, r.sport)
        body = r.title if r.summary is None else f"{r.title} {r.summary}"
        score = sentiment(body, rules)
        published = None if r.published_us is None else EPOCH + timedelta(microseconds=r.published_us)
        for team in matcher.matches(body) or [None]:
            yield (
                r.sport,
                r.sports_date,
                r.item_id,
                team and team[0],
                team and team[1],
                team and team[2],
                published,
                r.outlet,
                r.title,
                r.url,
                score,
                run_id,
            )

    df = spark.createDataFrame(latest.rdd.flatMap(rows), schema(schemas, TABLE)).orderBy("sport", "item_id")
    write_output(spark, df, TABLE, args, schemas)
    spark.stop()


if __name__ == "__main__":
    main()
