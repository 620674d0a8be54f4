-- The gold marts' fair lines through the pricing rules (docs/formulas.md,
-- "Fair line"): what each fair close was formed from, the fair open and the
-- opening offer's expected value against it, and per bookmaker the mean of
-- those expected values. Older rows keep NULL until the next gold run.
ALTER TABLE serving.gold_closing_line_value
    ADD COLUMN close_fair_basis TEXT,
    ADD COLUMN open_fair_prob   DOUBLE PRECISION,
    ADD COLUMN opening_ev       DOUBLE PRECISION;

ALTER TABLE serving.gold_bookmaker_comparison
    ADD COLUMN opening_ev_n              BIGINT,
    ADD COLUMN opening_ev_avg            DOUBLE PRECISION,
    ADD COLUMN opening_ev_positive_share DOUBLE PRECISION;
