//! `limit`/`offset` paging and `order_by` sorting, with Airflow's defaults
//! and limits so scripts written against Airflow page the same way here.

use axum::http::StatusCode;

use crate::problem::Problem;

/// Page size when the caller gives no `limit` (Airflow's default).
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page served; bigger limits are capped, as Airflow's `maximum_page_limit` does.
pub const MAX_LIMIT: i64 = 100;

/// A validated page window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// 422 for a negative `limit` or `offset`.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Problem> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        if limit < 0 {
            return Err(Problem::unprocessable("limit must be 0 or more"));
        }
        if offset < 0 {
            return Err(Problem::unprocessable("offset must be 0 or more"));
        }
        Ok(Self {
            limit: limit.min(MAX_LIMIT),
            offset,
        })
    }
}

/// Airflow 3 also pages some lists by cursor; BetFlow does not, and says so
/// (400) rather than return the first page under a cursor the caller expects to follow.
pub fn no_cursor(cursor: Option<&str>) -> Result<(), Problem> {
    match cursor {
        None => Ok(()),
        Some(_) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "cursor paging is not supported; use limit and offset",
        )),
    }
}

/// Checks a batch list's request: every path id is `~` (the ids come in
/// the body, `use` says where to post instead), and no filter BetFlow lacks
/// is set: it is refused with a 400 rather than ignored, so a script never
/// reads an unfiltered page as filtered.
pub fn batch_request(
    path_ids: &[&str],
    other: &serde_json::Map<String, serde_json::Value>,
    what: &str,
    use_path: &str,
) -> Result<(), Problem> {
    if path_ids.iter().any(|id| *id != super::ALL) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("the batch list takes its ids in the body: use {use_path}"),
        ));
    }
    match other.iter().find(|(_, v)| !v.is_null()) {
        Some((name, _)) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("filtering {what} by `{name}` is not supported"),
        )),
        None => Ok(()),
    }
}

/// Parse `order_by` values (`name`, or `-name` for descending) against the
/// attributes a list supports. An unsupported attribute is a 400, Airflow's
/// answer for "disallowed or does not exist".
pub fn parse_order<K: Copy>(
    order_by: &[String],
    allowed: &[(&str, K)],
) -> Result<Vec<(K, bool)>, Problem> {
    order_by
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| {
            let (name, descending) = match o.strip_prefix('-') {
                Some(rest) => (rest, true),
                None => (o.as_str(), false),
            };
            allowed
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, k)| (*k, descending))
                .ok_or_else(|| {
                    let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "ordering by `{name}` is not supported; use one of: {}",
                            names.join(", ")
                        ),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_cap_and_reject_negatives() {
        assert_eq!(
            Page::new(None, None).unwrap(),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert_eq!(Page::new(Some(1000), Some(3)).unwrap().limit, MAX_LIMIT);
        assert_eq!(Page::new(Some(-1), None).unwrap_err().status, 422);
        assert_eq!(Page::new(None, Some(-5)).unwrap_err().status, 422);
    }

    #[test]
    fn order_by_reads_a_leading_minus_as_descending() {
        let allowed = [("id", 1), ("state", 2)];
        let got = parse_order(&["-state".to_owned(), "id".to_owned()], &allowed).unwrap();
        assert_eq!(got, vec![(2, true), (1, false)]);
        let err = parse_order(&["color".to_owned()], &allowed).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.detail.contains("id, state"), "{}", err.detail);
    }
}
