"""News for the Spark jobs: a day's stored feeds read into articles, the
teams an article names, and its sentiment score. Plain Python (no Spark),
so a test holds every function here against the Rust code it mirrors.

The rules (text bounds, each sport's team phrases, the lexicon) are not
written here: BetFlow exports them from its Rust code as `news.json`
(`betflow glue news-rules`), shipped beside `schemas.json`. The
algorithms follow the Rust ones step by step (docs/glue.md#news):

* feeds: `sources/src/news/parse.rs` (RSS and Atom as the feed-rs crate
  reads them, NewsAPI JSON), the day's articles by New York sports day,
  first occurrence of each url (`dags/src/ingest/news.rs`);
* teams: `sources/src/news/teams.rs` (`TeamMatcher::matches`);
* sentiment: `dags/src/live/news/mod.rs` (`sentiment`).
"""

import hashlib
import html
import json
import re
import unicodedata
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

ATOM = "http://www.w3.org/2005/Atom"
DUBLIN_CORE = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
WFW = "http://wellformedweb.org/CommentAPI/"


class Rejected(ValueError):
    """An article (or a field of one) that breaks a rule: left out."""


class Rules:
    """`news.json`: text bounds, team phrases by sport, the lexicon."""

    def __init__(self, data):
        if data.get("version") != 1:
            raise ValueError(f"news.json version {data.get('version')} is not 1")
        limits = data["limits"]
        self.max_title = limits["max_title"]
        self.max_name = limits["max_name"]
        self.max_url = limits["max_url"]
        sentiment = data["sentiment"]
        self.lexicon = {w: s for w, s in sentiment["lexicon"]}
        self.negations = set(sentiment["negations"])
        self.negation_reach = sentiment["negation_reach"]
        self.alpha = sentiment["alpha"]
        self.teams = data["teams"]

    @classmethod
    def parse(cls, text):
        return cls(json.loads(text))


# --- text bounds (sources/src/text.rs) ----------------------------------------


def _bidi(c):
    return 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069


def _control(c):
    return unicodedata.category(c) == "Cc"


def bounded(text, limit):
    """`text` trimmed, tabs and line breaks as spaces; Rejected when longer
    than `limit` characters or holding NUL, another control character or a
    bidi override."""
    trimmed = text.strip()
    if len(trimmed) > limit:
        raise Rejected(f"is {len(trimmed)} characters long (at most {limit})")
    out = []
    for c in trimmed:
        if c == "\0":
            raise Rejected("holds a NUL character")
        if c in "\t\n\r":
            out.append(" ")
        elif _bidi(c):
            raise Rejected(f"holds the bidirectional override U+{ord(c):04X}")
        elif _control(c):
            raise Rejected(f"holds the control character U+{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def check(text, limit):
    """Like `bounded` without trimming; a tab or line break is refused."""
    if len(text) > limit:
        raise Rejected(f"is {len(text)} characters long (at most {limit})")
    for c in text:
        if c == "\0":
            raise Rejected("holds a NUL character")
        if _bidi(c):
            raise Rejected(f"holds the bidirectional override U+{ord(c):04X}")
        if _control(c):
            raise Rejected(f"holds the control character U+{ord(c):04X}")


def field(name, text, limit):
    try:
        return bounded(text, limit)
    except Rejected as e:
        raise Rejected(f"{name} {e}") from None


# --- articles (sources/src/news/parse.rs) ---------------------------------------


def item_id(url):
    """The first 128 bits of SHA-256 of the trimmed url, in hex."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:32]


def clean(text):
    """Tags removed (a `<` opens one only before a letter, `/` or `!`), then
    entities decoded once, whitespace collapsed to single spaces."""
    out = []
    in_tag = False
    n = len(text)
    for i, c in enumerate(text):
        if c == "<" and not in_tag and i + 1 < n and (
            (text[i + 1].isascii() and text[i + 1].isalpha()) or text[i + 1] in "/!"
        ):
            in_tag = True
        elif c == ">" and in_tag:
            in_tag = False
            out.append(" ")
        elif not in_tag:
            out.append(c)
    return " ".join(html.unescape("".join(out)).split())


def summary_text(s, rules):
    """A summary cut at `max_title` characters; None when it breaks a bound
    or is empty."""
    try:
        s = bounded(s[: rules.max_title], rules.max_title)
    except Rejected:
        return None
    return s or None


def http_url(url, rules):
    if len(url.encode("utf-8")) > rules.max_url:
        raise Rejected(f"link is {len(url.encode('utf-8'))} bytes long (at most {rules.max_url})")
    try:
        check(url, rules.max_url)
    except Rejected as e:
        raise Rejected(f"link {e}") from None
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in url):
        raise Rejected(f"link {url!r} is not an absolute http(s) URL")
    return url


def host(url):
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


# Feed dates, as feed-rs reads them: RFC 3339, then RFC 2822, then RFC 1123,
# each after the same clean-ups of common breakage.
_RFC3339_FIXES = [
    (re.compile(r"(\+|-)(\d{2})(\d{2})"), r"\1\2:\3"),
    (re.compile(r"-\d{2}$"), r"\g<0>T00:00:00+00:00"),
]
_RFC2822_FIXES = [
    (re.compile(r"(UTC|-0000$)"), "+0000"),
    (re.compile(r"(Sun|Mon|Tue|Wed|Thu|Fri|Sat)[a-z]*, "), ""),
    (re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"), r"\1"),
    (re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{1,2}) (\d{4})"), r"\2 \1 \3"),
    (re.compile(r" 24:"), " 00:"),
    (re.compile(r" ([0-9]):"), r" 0\1:"),
]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _first_fix(text, fixes):
    # Rust's Regex::replace replaces the first match only.
    for pattern, repl in fixes:
        text = pattern.sub(repl, text, count=1)
    return text


def _rfc3339(t):
    if not _RFC3339.match(t):
        return None
    head, tail = t[:19].replace("t", "T").replace(" ", "T"), t[19:]
    frac = ""
    if tail.startswith("."):
        digits = re.match(r"\.(\d+)", tail).group(1)
        frac, tail = "." + digits[:6].ljust(6, "0"), tail[1 + len(digits):]
    tail = "+00:00" if tail in ("Z", "z") else tail
    try:
        return datetime.fromisoformat(head + frac + tail).astimezone(timezone.utc)
    except ValueError:
        return None


def feed_time(text):
    """A feed's date as feed-rs's lenient parser reads it; None if none."""
    t = text.strip()
    found = _rfc3339(_first_fix(t, _RFC3339_FIXES).strip())
    if found:
        return found
    try:
        dt = parsedate_to_datetime(_first_fix(t, _RFC2822_FIXES))
        if dt.tzinfo is not None:
            return dt.astimezone(timezone.utc)
    except (TypeError, ValueError, IndexError):
        pass
    cleaned = re.sub(r" Z$", " +0000", t, count=1)
    cleaned = re.sub(r"^[^\W\d_]{3}, ", "", cleaned, count=1)
    try:
        return datetime.strptime(cleaned, "%d %b %Y %H:%M:%S %z").astimezone(timezone.utc)
    except ValueError:
        return None


class NotAFeed(ValueError):
    """The bytes are not RSS or Atom at all: the whole feed is unusable."""


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(tag):
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _text(el):
    """An element's character data (feed-rs's text node): None if it has
    none before a child element."""
    return el.text if el.text else None


def _atom_text(el):
    """An Atom text construct: its text, or for `xhtml` its markup."""
    if el.get("type") == "xhtml":
        return "".join(ElementTree.tostring(c, encoding="unicode") for c in el)
    return "".join(el.itertext())


def _rss_entry(item, rss_ns):
    entry = {"links": [], "title": None, "summary": None, "content": None, "published": None, "updated": None}
    for child in item:
        ns, name = _ns(child.tag), _local(child.tag)
        if ns == rss_ns and name == "title":
            entry["title"] = _text(child)
        elif ns == rss_ns and name in ("link", "comments") or ns == WFW and name in ("commentRss", "commentRSS"):
            if _text(child) is not None:
                entry["links"].append((_text(child), None))
        elif ns == rss_ns and name == "description":
            entry["summary"] = _text(child)
        elif ns == rss_ns and name == "pubDate" or ns == DUBLIN_CORE and name == "date":
            entry["published"] = feed_time(_text(child)) if _text(child) else None
        elif (ns == rss_ns or ns == ATOM) and name == "updated":
            entry["updated"] = feed_time(_text(child)) if _text(child) else None
        elif ns == CONTENT and name == "encoded":
            entry["content"] = _text(child)
    return entry


def _atom_entry(el):
    entry = {"links": [], "title": None, "summary": None, "content": None, "published": None, "updated": None}
    for child in el:
        if _ns(child.tag) != ATOM:
            continue
        name = _local(child.tag)
        if name == "title":
            entry["title"] = _atom_text(child)
        elif name == "link" and child.get("href") is not None:
            entry["links"].append((child.get("href"), child.get("rel") or "alternate"))
        elif name == "summary":
            entry["summary"] = _atom_text(child)
        elif name == "content" and child.get("src") is None:
            entry["content"] = _atom_text(child)
        elif name in ("published", "pubDate") and _text(child):
            entry["published"] = feed_time(_text(child))
        elif name == "updated" and _text(child):
            entry["updated"] = feed_time(_text(child))
    return entry


def _entries(xml_text):
    """(feed title or None, entries) of an RSS 0.9x/1.0/2.0 or Atom document."""
    try:
        root = ElementTree.fromstring(xml_text.encode("utf-8"))
    except ElementTree.ParseError as e:
        raise NotAFeed(str(e)) from None
    name, ns = _local(root.tag), _ns(root.tag)
    if name == "feed" and ns == ATOM:
        title = next((_atom_text(c) for c in root if c.tag == f"{{{ATOM}}}title"), None)
        return title, [_atom_entry(e) for e in root if e.tag == f"{{{ATOM}}}entry"]
    if name == "rss":
        channel = next((c for c in root if _local(c.tag) == "channel"), None)
        if channel is None:
            raise NotAFeed("an RSS document without a channel")
        rss_ns = _ns(channel.tag)
        title = next((_text(c) for c in channel if c.tag == _tag(rss_ns, "title")), None)
        return title, [_rss_entry(i, rss_ns) for i in channel if i.tag == _tag(rss_ns, "item")]
    if name == "RDF":
        channel = next((c for c in root if _local(c.tag) == "channel"), None)
        rss_ns = _ns(channel.tag) if channel is not None else ""
        title = None
        if channel is not None:
            title = next((_text(c) for c in channel if c.tag == _tag(rss_ns, "title")), None)
        return title, [_rss_entry(i, rss_ns) for i in root if _local(i.tag) == "item"]
    raise NotAFeed(f"a <{name}> document is not RSS or Atom")


def _tag(ns, name):
    return f"{{{ns}}}{name}" if ns else name


def _link(links):
    for href, rel in links:
        if rel is None or rel == "alternate":
            chosen = href
            break
    else:
        chosen = links[0][0] if links else None
    if chosen is None or not chosen.strip():
        return None
    return chosen.strip()


def _entry_item(entry, outlet, rules):
    url = _link(entry["links"])
    if url is None:
        raise Rejected("no link")
    url = http_url(url, rules)
    published = entry["published"] or entry["updated"]
    if published is None:
        raise Rejected("no date (pubDate/published/updated missing or unparseable)")
    title = clean(entry["title"]) if entry["title"] is not None else ""
    if not title:
        raise Rejected("no title")
    title = field("title", title, rules.max_title)
    summary = None
    if entry["summary"] is not None:
        summary = clean(entry["summary"])
    elif entry["content"] is not None:
        summary = clean(entry["content"])
    summary = summary_text(summary, rules) if summary is not None else None
    return {
        "item_id": item_id(url),
        "url": url,
        "title": title,
        "summary": summary,
        "published_at": published,
        "outlet": outlet,
    }


def parse_feed(xml_text, feed_url, rules):
    """The articles of an RSS or Atom document, and how many were rejected.
    NotAFeed when it is not a feed at all."""
    title, entries = _entries(xml_text)
    outlet = clean(title) if title is not None else ""
    outlet = outlet or host(feed_url) or feed_url
    items, rejected = [], 0
    for entry in entries:
        try:
            items.append(_entry_item(entry, outlet, rules))
        except Rejected:
            rejected += 1
    return items, rejected


def _strip_outlet(title, outlet):
    suffix = " - " + outlet
    if outlet and title.endswith(suffix):
        return title[: -len(suffix)].strip()
    return title.strip()


def _article_item(a, feed, rules, parse_time):
    def text(k):
        v = a.get(k) if isinstance(a, dict) else None
        return clean(v) if isinstance(v, str) else None

    url = text("url")
    if not url:
        raise Rejected("no link")
    url = http_url(url, rules)
    published = a.get("publishedAt")
    published = parse_time(published) if isinstance(published, str) else None
    if published is None:
        raise Rejected("no date (publishedAt missing or unparseable)")
    source = a.get("source")
    name = source.get("name") if isinstance(source, dict) else None
    outlet = clean(name) if isinstance(name, str) else None
    if outlet:
        try:
            check(outlet, rules.max_name)
        except Rejected:
            outlet = None
    outlet = outlet or host(url) or feed
    title = text("title")
    title = _strip_outlet(title, outlet) if title is not None else ""
    if not title:
        raise Rejected("no title")
    title = field("title", title, rules.max_title)
    description = text("description")
    return {
        "item_id": item_id(url),
        "url": url,
        "title": title,
        "summary": summary_text(description, rules) if description is not None else None,
        "published_at": published,
        "outlet": outlet,
    }


def parse_newsapi(body, feed, rules, parse_time):
    """The articles of a NewsAPI response, and how many were rejected.
    NotAFeed for an error response or one without articles."""
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, str) and status != "ok":
        raise NotAFeed(f"{feed}: NewsAPI status {status!r}")
    articles = body.get("articles") if isinstance(body, dict) else None
    if not isinstance(articles, list):
        raise NotAFeed(f"{feed}: no `articles` list")
    items, rejected = [], 0
    for a in articles:
        try:
            items.append(_article_item(a, feed, rules, parse_time))
        except Rejected:
            rejected += 1
    return items, rejected


def sports_day(instant):
    """The New York calendar day of an aware UTC time."""
    return instant.astimezone(NEW_YORK).date()


def stored_feed_items(stored, rules, parse_time):
    """The articles of one stored feed (`{feed, format, body, error}`);
    NotAFeed when the feed is unusable as a whole."""
    if not isinstance(stored, dict) or not isinstance(stored.get("feed"), str):
        raise NotAFeed("not a stored feed")
    fmt, body, error = stored.get("format"), stored.get("body"), stored.get("error")
    if fmt not in ("xml", "newsapi") or (error is not None and not isinstance(error, str)):
        raise NotAFeed("not a stored feed")
    if error is not None:
        raise NotAFeed(f"fetching {stored['feed']} failed: {error}")
    if body is None:
        raise NotAFeed(f"{stored['feed']}: no body stored")
    if fmt == "xml":
        if not isinstance(body, str):
            raise NotAFeed(f"{stored['feed']}: XML body is not a string")
        return parse_feed(body, stored["feed"], rules)[0]
    return parse_newsapi(body, stored["feed"], rules, parse_time)[0]


def read_day(payload, day, rules, parse_time):
    """The articles of a day's stored news object (a JSON array of stored
    feeds) published on sports day `day`: first occurrence of each url,
    in feed order."""
    if not isinstance(payload, list):
        return []
    seen, out = set(), []
    for stored in payload:
        try:
            items = stored_feed_items(stored, rules, parse_time)
        except NotAFeed:
            continue
        for item in items:
            if sports_day(item["published_at"]) != day or item["item_id"] in seen:
                continue
            seen.add(item["item_id"])
            out.append(item)
    return out


# --- teams (sources/src/news/teams.rs) -------------------------------------------


def _is_word(c):
    return c.isalnum()


def _capitalised_before(head):
    trimmed = head.rstrip(" ")
    if len(trimmed) == len(head):
        return False
    i = len(trimmed)
    while i > 0 and trimmed[i - 1].isalnum():
        i -= 1
    return i < len(trimmed) and trimmed[i].isupper()


def _capitalised_after(tail):
    trimmed = tail.lstrip(" ")
    return len(trimmed) != len(tail) and trimmed[:1].isupper()


def _find_word(text, phrase, alone):
    start = 0
    while True:
        at = text.find(phrase, start)
        if at < 0:
            return None
        end = at + len(phrase)
        before_ok = at == 0 or not _is_word(text[at - 1])
        after_ok = end == len(text) or not _is_word(text[end])
        standalone = not alone or (not _capitalised_before(text[:at]) and not _capitalised_after(text[end:]))
        if before_ok and after_ok and standalone:
            return at
        start = at + 1


class TeamMatcher:
    """The teams of one sport an article names (its exported phrases)."""

    def __init__(self, rules, sport):
        if sport not in rules.teams:
            raise ValueError(f"news.json has no teams for sport {sport!r}")
        data = rules.teams[sport]
        self.teams = [tuple(t) for t in data["teams"]]
        self.phrases = [(p, team, location) for p, team, location in data["phrases"]]

    def matches(self, text):
        """[(team_id, team_name, phrase)] in order of first mention."""
        found = []
        for phrase, team, location in self.phrases:
            at = _find_word(text, phrase, location)
            if at is not None:
                # Rust sorts by byte offset; the order is the same by
                # character, and phrases compare alike (by code point).
                found.append((len(text[:at].encode("utf-8")), team, phrase))
        found.sort()
        seen, out = set(), []
        for _, team, phrase in found:
            if team in seen:
                continue
            seen.add(team)
            out.append((self.teams[team][0], self.teams[team][1], phrase))
        return out


# --- sentiment (dags/src/live/news/mod.rs) ----------------------------------------


def sentiment(text, rules):
    """Lexicon sentiment in (-1, 1): the words' weights summed (a negation
    within reach flips one), mapped by s / sqrt(s² + alpha)."""
    tokens, word = [], []
    for c in text.lower():
        if c.isalnum() or c == "'":
            word.append(c)
        elif word:
            tokens.append("".join(word))
            word = []
    if word:
        tokens.append("".join(word))
    total = 0.0
    for i, token in enumerate(tokens):
        w = rules.lexicon.get(token)
        if w is None:
            continue
        negated = any(t in rules.negations for t in tokens[max(0, i - rules.negation_reach):i])
        total += -w if negated else w
    return total / (total * total + rules.alpha) ** 0.5
