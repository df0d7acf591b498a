"""pgdrill's lab: throwaway PostgreSQL clusters and sample data, for the demo, the tests and the
benchmarks. A development package of the repository (lab/pyproject.toml), installed editable by
./run; nothing here is installed on database hosts or shipped in the pgdrill wheel."""

import os


def checkout() -> str:
    """The pgdrill checkout the lab is installed from (editable): the demo runs its playbooks and
    inventories."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(root, "playbooks", "run_backup.yml")):
        raise RuntimeError(f"pgdrill's lab runs from a checkout of pgdrill (pip install -e lab); {root} is not one")
    return root
