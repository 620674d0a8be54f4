//! HTTP clients for the external data sources, and the offline replay source.
