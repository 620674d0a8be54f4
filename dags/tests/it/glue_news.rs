//! The news scripts' Python (`glue/betflow_news.py`) against the Rust code
//! it mirrors, function by function and without Spark: the same feeds
//! must give the same articles, the same texts the same teams and
//! sentiment. The Spark jobs around it are compared table by table in the
//! root crate's `tests/it/spark.rs`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use dags::live::news::sentiment;
use serde_json::{json, Value};
use sources::news::{parse_feed, parse_newsapi, FeedItem, TeamMatcher};
use sources::{Validated, SPORTS};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What both sides print of a feed: its articles and how many it rejected.
fn articles(v: &Validated<FeedItem>) -> Value {
    let items: Vec<Value> = v
        .good
        .iter()
        .map(|i| {
            json!({"item_id": i.item_id, "url": i.url, "title": i.title, "summary": i.summary,
                   "published_at": time(&i.published_at), "outlet": i.source})
        })
        .collect();
    json!({"items": items, "rejected": v.rejected.len()})
}

/// Runs the Python side over `cases` and returns what it printed.
fn python_side(cases: &Value) -> Value {
    let python = std::env::var("BETFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import betflow_news as news
from betflow_glue import parse_time
rules = news.Rules.parse(open(sys.argv[2]).read())
cases = json.load(sys.stdin)

def out(items, rejected):
    return {"items": [dict(i, published_at=i["published_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")) for i in items],
            "rejected": rejected}

def feed(case):
    try:
        if case["format"] == "xml":
            return out(*news.parse_feed(case["body"], case["feed"], rules))
        return out(*news.parse_newsapi(case["body"], case["feed"], rules, parse_time))
    except news.NotAFeed:
        return "not a feed"

matchers = {s: news.TeamMatcher(rules, s) for s in cases["sports"]}
print(json.dumps({
    "feeds": [feed(c) for c in cases["feeds"]],
    "texts": [{"sentiment": news.sentiment(t, rules),
               "teams": {s: [list(m) for m in matchers[s].matches(t)] for s in cases["sports"]}}
              for t in cases["texts"]],
}))
"#;
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(repo("glue"))
        .arg(repo("glue/news.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {python}: {e} (scripts/test sets BETFLOW_PYTHON)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python's JSON")
}

/// An RSS document of `items` (`<item>` bodies).
fn rss(title: &str, items: &[&str]) -> String {
    let items: String = items
        .iter()
        .map(|i| format!("<item>{i}</item>\n"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>{title}</title><link>https://news.example.com</link>
{items}</channel></rss>"#
    )
}

/// Feeds that reach the corners of the parser: entities and tags in
/// titles, every date form feed-rs mends, links that are not http, text
/// out of bounds, content without a description, an Atom `self` link.
fn tricky_feeds() -> Vec<(String, String)> {
    let long = "word ".repeat(600);
    let rss_doc = rss(
        "Scores &amp; More",
        &[
            "<title>Chiefs&#8217; defense &lt;b&gt;dominant&lt;/b&gt;</title><link>https://news.example.com/a</link><pubDate>Sun, 8 Sep 2024 9:05:00 -0400</pubDate>",
            "<title><![CDATA[Ravens <i>rally</i> &amp; win]]></title><link> https://news.example.com/b </link><dc:date>2024-09-08T20:00:00Z</dc:date>",
            "<title>Thursday form</title><link>https://news.example.com/c</link><pubDate>Thurs, 12 Sep 2024 07:38:00 GMT</pubDate>",
            "<title>Long month</title><link>https://news.example.com/d</link><pubDate>Sun, 08 September 2024 10:00:00 UTC</pubDate>",
            "<title>RFC 3339 in RSS</title><link>https://news.example.com/e</link><pubDate>2024-09-08T10:00:00-0500</pubDate>",
            "<title>Not http</title><link>ftp://news.example.com/f</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate>",
            "<title>Relative</title><link>/g</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate>",
            "<title>Spoofed \u{202E}title</title><link>https://news.example.com/h</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate>",
            &format!("<title>Long summary</title><link>https://news.example.com/i</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate><description>{long}</description>"),
            "<title>Content only</title><link>https://news.example.com/j</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate><content:encoded><![CDATA[<p>Full <b>story</b>: Eagles &amp; Giants</p>]]></content:encoded>",
            "<title></title><link>https://news.example.com/k</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate>",
            "<title>3 &lt; 4 and caf&#233; &#x2014; 5&#160;pts</title><link>https://news.example.com/l</link><pubDate>Sun, 08 Sep 2024 24:10:00 GMT</pubDate>",
        ],
    );
    let atom = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">Desk &amp;amp; Co</title>
<entry><title>Self link first</title><link rel="self" href="https://desk.example.org/self"/><link rel="alternate" href="https://desk.example.org/alt"/><updated>2024-09-08T12:00:00Z</updated></entry>
<entry><title>Only an enclosure</title><link rel="enclosure" href="https://desk.example.org/e.mp3"/><published>2024-09-08T12:00:00.123456789+02:00</published></entry>
<entry><title>No date</title><link href="https://desk.example.org/n"/></entry>
</feed>"#;
    vec![
        (rss_doc, "https://news.example.com/rss".to_owned()),
        (atom.to_owned(), "https://desk.example.org/atom".to_owned()),
        (
            rss("", &["<title>Untitled feed</title><link>https://x.example.net/a</link><pubDate>Sun, 08 Sep 2024 10:00:00 GMT</pubDate>"]),
            "https://feeds.example.net/x".to_owned(),
        ),
        ("<html><body>503 Service Unavailable</body></html>".to_owned(), "https://down.example.com/rss".to_owned()),
        ("not xml at all".to_owned(), "https://junk.example.com/rss".to_owned()),
    ]
}

/// Headlines that test the matcher's rules: word boundaries, possessives,
/// locations standing alone or inside other names, case, abbreviations,
/// and the lexicon's negations.
const TEXTS: &[&str] = &[
    "Eagles' late rally stuns Cowboys",
    "Washington Capitals beat the Penguins in overtime",
    "Washington returns to practice",
    "New York Giants and New York Jets both lose",
    "kings of the hill: Kings win again",
    "KC and PHI meet; NO answer from the league",
    "Not a win for the Chiefs, no injury for Mahomes either",
    "Montréal Canadiens sign a star",
    "Ravens–Steelers: a torn ACL, surgery and a suspension",
    "Celtics clinch, Lakers never won't lose",
    "Agents leave Indianapolis as the Colts struggle",
    "Ohio State Buckeyes dominate Michigan Wolverines",
    "Bruins' goalie sidelined with a concussion; Maple Leafs upgraded",
    "",
    "It's the best victory isn't it",
];

#[test]
fn the_news_scripts_read_feeds_and_score_articles_as_the_rust_code_does() {
    let mut feeds: Vec<Value> = Vec::new();
    let mut expected_feeds: Vec<Value> = Vec::new();
    for (file, url) in [
        (
            "sources/fixtures/handwritten/espn_style_nfl_news.rss.xml",
            "https://www.espn.com/espn/rss/nfl/news",
        ),
        (
            "sources/fixtures/handwritten/sample_news.atom.xml",
            "https://hockey.example.org/feed.atom",
        ),
    ] {
        feeds.push(json!({"format": "xml", "feed": url, "body": read(file)}));
    }
    for (body, url) in tricky_feeds() {
        feeds.push(json!({"format": "xml", "feed": url, "body": body}));
    }
    let mut texts: Vec<String> = TEXTS.iter().map(|t| (*t).to_owned()).collect();
    for file in [
        "newsapi_top-headlines_football_Arpana-Sitoula.json",
        "newsapi_top-headlines_sports_softdev629.json",
    ] {
        let body: Value =
            serde_json::from_str(&read(&format!("sources/fixtures/real/{file}"))).unwrap();
        feeds.push(json!({"format": "newsapi", "feed": format!("replay://{file}"), "body": body}));
    }
    feeds.push(json!({"format": "newsapi", "feed": "replay://bad", "body": {"status": "error", "message": "bad key"}}));
    feeds.push(json!({"format": "newsapi", "feed": "replay://odd", "body": {"articles": [
        {"url": "https://cnn.com/a", "publishedAt": "2024-09-08T12:29Z", "title": "A - CNN", "source": {"name": "CNN"}},
        {"url": "https://cnn.com/b", "publishedAt": "2024-09-08T12:29:00", "title": "B\u{0} - CNN", "source": {"name": "CNN"}},
        {"url": "https://cnn.com/c", "publishedAt": "soon", "title": "C"},
        {"url": 7, "publishedAt": "2024-09-08T12:29:00Z", "title": "D"},
        {"url": "https://cnn.com/e", "publishedAt": "2024-09-08T12:29:00Z", "title": "E - ", "source": {"name": ""}},
        {"url": "https://cnn.com/f", "publishedAt": "2024-09-08T12:29:00Z", "title": "<b>F</b> &amp; more", "description": "\t"},
        "not an object"
    ]}}));

    for feed in &feeds {
        let url = feed["feed"].as_str().unwrap();
        let parsed = if feed["format"] == "xml" {
            parse_feed(feed["body"].as_str().unwrap().as_bytes(), url).map_err(|e| e.to_string())
        } else {
            parse_newsapi(&feed["body"], url)
        };
        match parsed {
            Ok(v) => {
                texts.extend(v.good.iter().map(FeedItem::text));
                expected_feeds.push(articles(&v));
            }
            Err(_) => expected_feeds.push(json!("not a feed")),
        }
    }

    let sports: Vec<&str> = SPORTS.iter().map(|s| s.key).collect();
    let python = python_side(&json!({"feeds": feeds, "texts": texts, "sports": sports}));

    for (i, (want, got)) in expected_feeds
        .iter()
        .zip(python["feeds"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(got, want, "feed {i} ({})", feeds[i]["feed"]);
    }
    let mut matched = 0;
    for (text, got) in texts.iter().zip(python["texts"].as_array().unwrap()) {
        let score = sentiment(text);
        let py = got["sentiment"].as_f64().unwrap();
        assert!(
            (py - score).abs() < 1e-12,
            "sentiment of {text:?}: rust {score}, python {py}"
        );
        for sport in &sports {
            let want: Vec<Value> = TeamMatcher::for_sport(sport)
                .unwrap()
                .matches(text)
                .into_iter()
                .map(|m| json!([m.team_id, m.team_name, m.phrase]))
                .collect();
            matched += want.len();
            assert_eq!(
                got["teams"][sport],
                json!(want),
                "{sport} teams of {text:?}"
            );
        }
    }
    // The texts do exercise the matcher and the feeds the parser.
    assert!(matched > 20, "only {matched} team matches");
    assert!(
        expected_feeds
            .iter()
            .filter(|f| f["items"].as_array().is_some_and(|i| !i.is_empty()))
            .count()
            >= 5
    );
}
