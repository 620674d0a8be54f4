"""What every BetFlow Spark job shares: its arguments, the Spark session,
the table schemas BetFlow exports, reading the raw lake, and writing the
staged output with its manifest.

A job never touches Iceberg metadata. BetFlow plans its inputs (the raw
objects of one sports day, or the data files of the bronze partitions) into
an input manifest, the job writes plain Parquet files under its output
prefix and a manifest of them, and BetFlow commits those files to the
Iceberg table itself, with the same replace-partition commit and quality
gates as the polars engine (docs/glue.md).

The same scripts run on AWS Glue (arguments through awsglue's
getResolvedOptions, S3 through Glue's file system) and under a local
`spark-submit --master local[2]` (arguments parsed here, local paths).
"""

import argparse
import gzip
import json
import math
import re
import sys
from datetime import datetime, timedelta, timezone

from pyspark.sql import SparkSession
from pyspark.sql import types as T

#: The arguments BetFlow passes to every job run (docs/glue.md#arguments).
ARGUMENTS = ["input_manifest", "output", "schemas", "run_id", "logical_date", "sports_day"]

#: The staged output's manifest, beside its Parquet files.
MANIFEST = "_betflow_manifest.json"

#: Iceberg type names (as `glue/schemas.json` spells them) → Spark types.
SPARK_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def arguments(names=ARGUMENTS):
    """The job's arguments, by name without the leading `--`."""
    try:
        from awsglue.utils import getResolvedOptions  # only on AWS Glue
    except ImportError:
        parser = argparse.ArgumentParser()
        for name in names:
            parser.add_argument("--" + name, required=True)
        parsed, _ = parser.parse_known_args()
        return vars(parsed)
    return getResolvedOptions(sys.argv, names)


def session(app):
    """A Spark session that reads and writes times as BetFlow does: UTC,
    Parquet timestamps in microseconds (Iceberg's `timestamp`)."""
    spark = (
        SparkSession.builder.appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # The manifest says what was written; no `_SUCCESS` marker files.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )
    # On a local disk Hadoop writes a hidden `.crc` beside every file; the
    # staging prefix is BetFlow's to list and remove, so write none.
    jvm = spark.sparkContext._jvm
    jvm.org.apache.hadoop.fs.FileSystem.getLocal(spark.sparkContext._jsc.hadoopConfiguration()).setWriteChecksum(False)
    return spark


def _hadoop_path(spark, uri):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def read_text(spark, uri):
    """One whole (small) file: a manifest, the schemas."""
    path, fs = _hadoop_path(spark, uri)
    stream = fs.open(path)
    try:
        reader = spark.sparkContext._jvm.java.io.BufferedReader(
            spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8")
        )
        lines = []
        line = reader.readLine()
        while line is not None:
            lines.append(line)
            line = reader.readLine()
        return "\n".join(lines)
    finally:
        stream.close()


def write_text(spark, uri, text):
    path, fs = _hadoop_path(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def read_json(spark, uri):
    return json.loads(read_text(spark, uri))


def news_rules(spark, args):
    """The news rules BetFlow exports (`news.json`, beside the schemas)."""
    from betflow_news import Rules

    return Rules.parse(read_text(spark, args["schemas"].rsplit("/", 1)[0] + "/news.json"))


def schema(schemas, table):
    """The Spark schema of `table` (`bronze.weather`) from BetFlow's export."""
    tables = schemas["tables"]
    if table not in tables:
        raise ValueError(f"{table} is not in the schemas BetFlow exported ({sorted(tables)})")
    return T.StructType(
        [
            T.StructField(c["name"], SPARK_TYPES[c["type"]], not c["required"])
            for c in tables[table]["columns"]
        ]
    )


def raw_objects(spark, objects):
    """(object, parsed JSON) of each raw-lake object the manifest lists, as
    an RDD. Raw objects are gzipped JSON; one that is not JSON is left out
    (the `validate` task dead-lettered it already)."""
    if not objects:
        return spark.sparkContext.emptyRDD()
    by_key = {o["key"]: o for o in objects}
    uris = ",".join(o["uri"] for o in objects)

    def parse(item):
        path, data = item
        obj = next((o for k, o in by_key.items() if path.endswith(k)), None)
        if obj is None:
            return []
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            return [(obj, json.loads(data))]
        except ValueError:
            return []

    return spark.sparkContext.binaryFiles(uris).flatMap(parse)


def write_output(spark, df, table, args, schemas):
    """Writes `df` (in `table`'s column order) as Parquet under
    `{output}/{table}/data/` and, beside it, the manifest BetFlow reads
    before committing (files relative to `{output}/{table}/`)."""
    spark_schema = schema(schemas, table)
    df = df.select(*[f.name for f in spark_schema.fields])
    out = args["output"].rstrip("/") + "/" + table
    df.cache()
    rows = df.count()
    df.write.mode("overwrite").parquet(out + "/data")
    path, fs = _hadoop_path(spark, out + "/data")
    files = sorted(
        s.getPath().getName()
        for s in fs.listStatus(path)
        if s.getPath().getName().endswith(".parquet")
    )
    manifest = {
        "table": table,
        "rows": rows,
        "files": ["data/" + f for f in files],
        "run_id": args["run_id"],
        "sports_day": args["sports_day"],
        "schemas_version": schemas["version"],
    }
    write_text(spark, out + "/" + MANIFEST, json.dumps(manifest, indent=2))
    return manifest


# --- lenient readers, the rules of BetFlow's Rust sources (docs/glue.md) ---

_TIME_FORMATS = ["%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(text):
    """RFC 3339, ESPN's minute precision `2022-09-11T17:00Z`, or a zone-less
    ISO time taken as UTC; None otherwise."""
    if not isinstance(text, str):
        return None
    t = text.strip()
    if _RFC3339.match(t):
        head, frac, tail = t[:19], "", t[19:]
        if tail.startswith("."):
            digits = re.match(r"\.(\d+)", tail).group(1)
            frac, tail = "." + digits[:6].ljust(6, "0"), tail[1 + len(digits):]
        tail = "+00:00" if tail in ("Z", "z") else tail
        try:
            dt = datetime.fromisoformat(head.replace("t", "T").replace(" ", "T") + frac + tail)
            return dt.astimezone(timezone.utc)
        except ValueError:
            return None
    for f in _TIME_FORMATS:
        try:
            return datetime.strptime(t, f).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def utc(dt):
    """A time as Spark's TimestampType must take it from Python: aware.
    (A naive one would be read in the Python process's local zone.)"""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_instant(text):
    """An RFC 3339 instant with microseconds (the manifests' times)."""
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def parse_date(text):
    return datetime.strptime(text, "%Y-%m-%d").date()


def shift(dt, seconds):
    return dt - timedelta(seconds=seconds)


def bronze_input(spark, manifest, schemas, table, same_day=True):
    """The rows of `table`'s data files the manifest lists, restricted to the
    run's sports and (unless `same_day` is false: a window of days was
    planned) its day. A file holds one (sport, day) partition; the filter
    keeps that an assumption checked, not trusted."""
    spark_schema = schema(schemas, table)
    files = manifest["inputs"].get(table, [])
    if not files:
        return spark.createDataFrame([], spark_schema)
    from pyspark.sql import functions as F

    df = spark.read.schema(spark_schema).parquet(*files)
    keep = F.col("sport").isin(manifest["sports"])
    if same_day:
        days = manifest.get("sports_days") or [manifest["sports_day"]]
        keep = keep & F.col("sports_date").isin([F.lit(d).cast("date") for d in days])
    return df.where(keep)


def unix_time(secs):
    """Unix seconds as an aware UTC time; None when not finite."""
    if not math.isfinite(secs):
        return None
    try:
        return datetime.fromtimestamp(secs, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


# --- JSON types as BetFlow's Rust decoders take them --------------------------


class Bad(ValueError):
    """A value of the wrong JSON type, or a record breaking a rule: the
    record it is in is left out."""


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def opt_str(v):
    if v is None or isinstance(v, str):
        return v
    raise Bad("not a string")


def list_or_null(v):
    """A list, where the source may send null for an empty one."""
    if v is None:
        return []
    if isinstance(v, list):
        return v
    raise Bad("not a list")


# --- bronze jobs --------------------------------------------------------------


def origin_of(obj, manifest):
    """The sports day and the origin columns (source, raw_key, run_id,
    ingested_at) of one raw object's rows. An object may name its own day
    (a manifest spanning days, as the batch bench writes); else the run's."""
    day = parse_date(obj.get("sports_date") or manifest["sports_day"])
    origin = (obj["source"], obj["key"], manifest["run_id"], parse_instant(manifest["ingested_at"]))
    return day, origin


def run_bronze(table, rows, context=None):
    """A bronze job from end to end: the manifest's raw objects, each read
    into `rows(item, manifest)` (item: (object, parsed JSON)), written as
    `table`. With `context(spark, args)`, rows get its value as a third
    argument (what the driver reads once for every object)."""
    args = arguments()
    spark = session("betflow-" + table)
    schemas = read_json(spark, args["schemas"])
    manifest = read_json(spark, args["input_manifest"])
    if context is None:
        data = raw_objects(spark, manifest["objects"]).flatMap(lambda item: rows(item, manifest))
    else:
        extra = context(spark, args)
        data = raw_objects(spark, manifest["objects"]).flatMap(lambda item: rows(item, manifest, extra))
    df = spark.createDataFrame(data, schema(schemas, table))
    write_output(spark, df, table, args, schemas)
    spark.stop()
