"""Choosing the archive entries of a partial restore (pure), on a listing as pg_restore --list
--verbose prints it for tests/data/rich.sql (trimmed)."""

import pytest

from pgdrill import toc
from pgdrill.recovery import partial_list
from pgdrill.errors import PgdrillError

LISTING = """;
; Archive created at 2026-11-27 12:00:00 UTC
;
9; 2615 16703 SCHEMA - Rechnungsbüro Ω app_owner
11; 2615 16705 SCHEMA - a postgres
10; 2615 16704 SCHEMA - a.b postgres
12; 2615 16702 SCHEMA - app app_owner
3693; 0 0 ACL - SCHEMA app app_owner
;	depends on: 12
3; 3079 16469 EXTENSION - citext 
3694; 0 0 COMMENT - EXTENSION citext 
;	depends on: 3
1008; 1247 16709 TYPE app status app_owner
;	depends on: 12
382; 1255 16773 FUNCTION app touch() app_owner
;	depends on: 12
234; 1259 16802 TABLE a b.c postgres
;	depends on: 11
232; 1259 16796 TABLE a.b c postgres
;	depends on: 10
233; 1259 16799 TABLE a.b c.d postgres
;	depends on: 10
222; 1259 16721 TABLE app customers app_owner
;	depends on: 3 3 3 3 3 12 
3701; 0 0 ACL app TABLE customers app_owner
;	depends on: 222
221; 1259 16720 SEQUENCE app customers_id_seq app_owner
;	depends on: 222 12
224; 1259 16732 TABLE app invoices app_owner
;	depends on: 1008 1008 12
3704; 0 0 ACL app TABLE invoices app_owner
;	depends on: 224
225; 1259 16744 TABLE app invoices_2025 app_owner
;	depends on: 1008 1008 12 224
226; 1259 16756 TABLE app invoices_2026 app_owner
;	depends on: 1008 1008 12 224
227; 1259 16772 SEQUENCE app receipt_no app_owner
;	depends on: 12
3708; 0 0 ACL app SEQUENCE receipt_no app_owner
;	depends on: 227
3493; 0 0 TABLE ATTACH app invoices_2025 app_owner
;	depends on: 225 224
3494; 0 0 TABLE ATTACH app invoices_2026 app_owner
;	depends on: 226 224
3684; 2613 16813 BLOB - 16813 postgres
3685; 2613 16814 BLOB - 16814 app_owner
3673; 0 16721 TABLE DATA app customers app_owner
;	depends on: 222
3675; 0 16744 TABLE DATA app invoices_2025 app_owner
;	depends on: 225
3676; 0 16756 TABLE DATA app invoices_2026 app_owner
;	depends on: 226
3711; 0 0 SEQUENCE SET app customers_id_seq app_owner
;	depends on: 221
3713; 0 0 SEQUENCE SET app receipt_no app_owner
;	depends on: 227
3686; 0 0 BLOBS - BLOBS 
3503; 2606 16730 CONSTRAINT app customers customers_email_key app_owner
;	depends on: 222
3506; 2606 16728 CONSTRAINT app customers customers_pkey app_owner
;	depends on: 222
3509; 2606 16738 CONSTRAINT app invoices invoices_pkey app_owner
;	depends on: 224 224
3521; 2620 16774 TRIGGER app customers customers_touch app_owner
;	depends on: 222 382
3520; 2606 16739 FK CONSTRAINT app invoices invoices_customer_id_fkey app_owner
;	depends on: 224 3506 222
3667; 0 16732 ROW SECURITY app invoices app_owner
;	depends on: 224
3668; 3256 16787 POLICY app invoices tenant_rows app_owner
;	depends on: 224 224
3670; 6104 16806 PUBLICATION - invoices_pub postgres
3671; 6106 16807 PUBLICATION TABLE app invoices_pub customers postgres
;	depends on: 3670 222
2318; 826 16706 DEFAULT ACL app DEFAULT PRIVILEGES FOR TABLES app_owner
;	depends on: 12
"""


def chosen(schemas=(), tables=()):
    return {int(line.split(";")[0]) for line in partial_list(LISTING, tuple(schemas), tuple(tables)).splitlines()}


def test_entries_and_kinds_are_parsed_with_their_dependencies():
    entries = {e.id: e for e in toc.parse(LISTING)}
    assert entries[3675].kind == "TABLE DATA" and entries[3675].depends == (225,)
    assert entries[3520].kind == "FK CONSTRAINT" and entries[3671].kind == "PUBLICATION TABLE"
    assert entries[9].kind == "SCHEMA" and toc.find_schema(entries.values(), "Rechnungsbüro Ω") == [entries[9]]


def test_a_table_brings_its_partitions_data_indexes_policies_and_what_it_needs():
    ids = chosen(tables=["app.invoices"])
    assert {224, 225, 226, 3493, 3494, 3675, 3676, 3509, 3667, 3668, 3704} <= ids  # table, partitions, data, pkey, RLS, policy, ACL
    assert {12, 3693, 1008} <= ids  # its schema (with the schema's privileges) and its type
    assert 3520 not in ids  # the foreign key to customers, which was not chosen
    assert not ids & {222, 3673, 227, 3670, 3671, 2318, 3684}  # nothing else: other tables, publications, default ACLs, blobs


def test_a_table_with_a_trigger_brings_the_function_and_its_identity_sequence():
    ids = chosen(tables=["app.customers"])
    assert {222, 3673, 3701, 3506, 3503, 3521, 382, 221, 3711} <= ids
    assert 3671 not in ids and 3 in ids and 3694 in ids  # the extension it uses, with its comment; not the publication


def test_both_ends_of_a_foreign_key_bring_the_key():
    assert 3520 in chosen(tables=["app.invoices", "app.customers"])


def test_a_schema_brings_everything_in_it_but_what_depends_on_other_things():
    ids = chosen(schemas=["app"])
    assert {222, 224, 225, 226, 227, 3708, 3713, 3520, 2318, 3668} <= ids
    assert not ids & {232, 233, 234, 3670, 3671, 9}


def test_dotted_names_are_told_apart():
    assert chosen(tables=['"a.b".c']) >= {232, 10} and 233 not in chosen(tables=['"a.b".c']) and 234 not in chosen(tables=['"a.b".c'])
    assert 234 in chosen(tables=['a."b.c"'])
    assert toc.split_table('"a.b".c') == ("a.b", "c") and toc.split_table("customers") == ("public", "customers")
    with pytest.raises(ValueError):
        toc.split_table("a.b.c")


def test_unknown_names_are_refused():
    with pytest.raises(PgdrillError, match="no table app.nope"):
        chosen(tables=["app.nope"])
    with pytest.raises(PgdrillError, match="no schema 'billing'"):
        chosen(schemas=["billing"])
