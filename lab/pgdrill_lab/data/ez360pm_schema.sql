-- EZ360PM's example application schema: companies, users, memberships, clients, projects,
-- invoices and ledger entries. The demo, tests and benchmarks fill it (lab/pgdrill_lab/sample.py),
-- and the smoke checks in inventories/ez360pm/group_vars/pgdrill_staging.yml query it.
CREATE TABLE companies (
    id bigserial PRIMARY KEY, name text NOT NULL, slug text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL, settings jsonb NOT NULL
);
CREATE TABLE users (
    id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, password_hash text NOT NULL,
    full_name text NOT NULL, is_active boolean NOT NULL, last_login timestamptz, created_at timestamptz NOT NULL
);
CREATE TABLE memberships (
    user_id bigint NOT NULL REFERENCES users, company_id bigint NOT NULL REFERENCES companies,
    role text NOT NULL, PRIMARY KEY (user_id, company_id)
);
CREATE TABLE clients (
    id bigserial PRIMARY KEY, company_id bigint NOT NULL REFERENCES companies, name text NOT NULL,
    email text, phone text, address jsonb, created_at timestamptz NOT NULL
);
CREATE TABLE projects (
    id bigserial PRIMARY KEY, company_id bigint NOT NULL REFERENCES companies, client_id bigint NOT NULL REFERENCES clients,
    name text NOT NULL, status text NOT NULL CHECK (status IN ('active', 'on_hold', 'done')),
    budget numeric(12,2), starts_on date, metadata jsonb
);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY, company_id bigint NOT NULL REFERENCES companies, client_id bigint NOT NULL REFERENCES clients,
    project_id bigint REFERENCES projects, number text NOT NULL, issued_on date NOT NULL, due_on date NOT NULL,
    status text NOT NULL, total numeric(12,2) NOT NULL, currency char(3) NOT NULL, lines jsonb NOT NULL,
    notes text, created_at timestamptz NOT NULL
);
CREATE TABLE ledger_entries (
    id bigserial PRIMARY KEY, company_id bigint NOT NULL REFERENCES companies, invoice_id bigint REFERENCES invoices,
    account text NOT NULL, entry_date date NOT NULL, debit numeric(14,2) NOT NULL, credit numeric(14,2) NOT NULL,
    memo text, created_at timestamptz NOT NULL
);
