"""An EZ360PM-shaped sample database: companies, users, clients, projects, invoices and ledger
entries, with a realistic mix of text, numbers, dates, timestamps and jsonb (not filler that
compresses 40:1). ``scale`` is the number of invoices; about 1,000,000 gives a database of 1 GB."""

from __future__ import annotations

import os
from importlib import resources

from . import checkout
from .cluster import Cluster

WORDS = (
    "account adjust agreement amount annual approve audit balance bank budget cash client consult "
    "contract cost credit current customer deadline debit delivery deposit design discount draft due "
    "estimate expense fee final fiscal freight hardware hours install invoice labour ledger license "
    "maintenance margin material meeting milestone monthly net office onboarding order overtime "
    "payable payment payroll phase plan premium project quarter receivable refund rent report retainer "
    "review revenue salary schedule service setup shipping software statement subscription supplies "
    "support tax training transfer travel utilities vendor warranty website workshop"
).split()


def schema_sql() -> str:
    """The schema, shipped with the lab as package data."""
    return resources.files(__package__).joinpath("data", "ez360pm_schema.sql").read_text(encoding="utf-8")


def smoke_checks() -> list:
    """The seed's smoke tests, as the checkout's ez360pm inventory writes them for drills on this
    schema (one copy: the inventory's)."""
    import yaml

    with open(os.path.join(checkout(), "inventories", "ez360pm", "group_vars", "pgdrill_staging.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["pgdrill_drill_checks"]


def _sentence(words: str) -> str:
    """SQL for a random sentence of ``words`` words drawn from WORDS."""
    # The "+ 0 * s" ties the aggregate to the inner series; otherwise it would aggregate the outer query.
    return f"(SELECT string_agg(w[1 + floor(random() * array_length(w, 1))::int + 0 * s], ' ') FROM generate_series(1, {words}) s)"


def fill_sql(scale: int) -> str:
    companies = max(3, scale // 20000)
    users = max(5, scale // 100)
    clients = max(10, scale // 20)
    projects = max(10, scale // 10)
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    return f"""
SELECT setseed(0.42);
CREATE TEMP TABLE vocabulary AS SELECT {words}::text[] AS w;
INSERT INTO companies (name, slug, created_at, settings)
SELECT 'Company ' || g, 'company-' || g, now() - (g || ' days')::interval,
       jsonb_build_object('currency', 'USD', 'fiscal_year_start', 1 + g % 12, 'invoice_prefix', 'C' || g)
FROM generate_series(1, {companies}) g;
INSERT INTO users (email, password_hash, full_name, is_active, last_login, created_at)
SELECT 'user' || g || '@example.com', 'pbkdf2_sha256$600000$' || md5(g::text), 'User ' || g,
       g % 17 <> 0, now() - (g % 400 || ' hours')::interval, now() - (g % 900 || ' days')::interval
FROM generate_series(1, {users}) g;
INSERT INTO memberships SELECT u, 1 + (u % {companies}), (ARRAY['owner','admin','staff'])[1 + u % 3] FROM generate_series(1, {users}) u;
INSERT INTO clients (company_id, name, email, phone, address, created_at)
SELECT 1 + g % {companies}, initcap(w[1 + g % array_length(w,1)]) || ' ' || initcap(w[1 + (g * 7) % array_length(w,1)]) || ' Ltd',
       'billing' || g || '@client.example', '+1-555-' || lpad((g % 10000)::text, 4, '0'),
       jsonb_build_object('street', (g % 999) || ' Main St', 'city', 'City ' || g % 300, 'zip', lpad((g % 99999)::text, 5, '0')),
       now() - (g % 1000 || ' days')::interval
FROM generate_series(1, {clients}) g, vocabulary;
INSERT INTO projects (company_id, client_id, name, status, budget, starts_on, metadata)
SELECT 1 + g % {companies}, 1 + g % {clients}, initcap(w[1 + g % array_length(w,1)]) || ' phase ' || g % 7,
       (ARRAY['active','on_hold','done'])[1 + g % 3], round((random() * 90000 + 1000)::numeric, 2),
       date '2022-01-01' + g % 1400, jsonb_build_object('tags', jsonb_build_array(w[1 + g % 40], w[1 + g % 90]), 'billable', g % 5 <> 0)
FROM generate_series(1, {projects}) g, vocabulary;
INSERT INTO invoices (company_id, client_id, project_id, number, issued_on, due_on, status, total, currency, lines, notes, created_at)
SELECT 1 + g % {companies}, 1 + g % {clients}, 1 + g % {projects}, 'INV-' || lpad(g::text, 8, '0'),
       date '2022-01-01' + g % 1400, date '2022-01-31' + g % 1400,
       (ARRAY['draft','sent','paid','overdue','void'])[1 + g % 5], round((random() * 5000 + 50)::numeric, 2), 'USD',
       jsonb_build_array(
         jsonb_build_object('description', {_sentence(4)}, 'qty', 1 + g % 9, 'unit_price', round((random() * 400)::numeric, 2)),
         jsonb_build_object('description', {_sentence(3)}, 'qty', 1 + g % 4, 'unit_price', round((random() * 900)::numeric, 2))),
       {_sentence(12)}, now() - (g % 1400 || ' days')::interval - (g % 86400 || ' seconds')::interval
FROM generate_series(1, {scale}) g, vocabulary;
INSERT INTO ledger_entries (company_id, invoice_id, account, entry_date, debit, credit, memo, created_at)
SELECT 1 + g % {companies}, CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % {scale} END,
       (ARRAY['1100 Receivables','4000 Revenue','2100 Tax payable','1000 Cash','6100 Expenses'])[1 + g % 5],
       date '2022-01-01' + g % 1400, CASE WHEN g % 2 = 0 THEN round((random() * 3000)::numeric, 2) ELSE 0 END,
       CASE WHEN g % 2 = 1 THEN round((random() * 3000)::numeric, 2) ELSE 0 END,
       {_sentence(6)}, now() - (g % 1400 || ' days')::interval
FROM generate_series(1, {scale * 2}) g, vocabulary;
CREATE INDEX ON invoices (company_id, issued_on);
CREATE INDEX ON ledger_entries (company_id, entry_date);
ANALYZE;
"""


def create_sample(cluster: Cluster, dbname: str = "ez360pm", scale: int = 2000) -> None:
    cluster.psql(f'CREATE DATABASE "{dbname}"')
    cluster.psql(schema_sql() + fill_sql(scale), dbname)
