"""bronze.news: the articles of one sports day's raw news objects, one row
per article published on that (New York) day, first occurrence of each
url, in feed order.

Rules (docs/glue.md#bronze-news), as the polars engine applies them: a
stored feed whose fetch failed, or that is not RSS, Atom or a NewsAPI
response, is left out whole; an article without an http(s) link, a date or
a title, or whose title breaks the text bounds, is left out alone (the
`validate` task dead-lettered both already). Parsing, cleaning and the
bounds are in `betflow_news`, with the bounds from `news.json`.
"""

from betflow_glue import news_rules, origin_of, parse_time, run_bronze, utc
from betflow_news import read_day

TABLE = "bronze.news"


def rows(item, manifest, rules):
    obj, payload = item
    day, origin = origin_of(obj, manifest)
    for article in read_day(payload, day, rules, parse_time):
        yield (
            obj["sport"],
            day,
            article["item_id"],
            article["url"],
            article["title"],
            article["summary"],
            utc(article["published_at"]),
            article["outlet"],
        ) + origin


if __name__ == "__main__":
    run_bronze(TABLE, rows, context=news_rules)
