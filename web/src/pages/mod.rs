//! Server-rendered pages. Each module holds one page family: its handlers,
//! its askama template structs, and its routes.

mod login;

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().merge(login::routes())
}
