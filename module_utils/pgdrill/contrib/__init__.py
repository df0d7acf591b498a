"""Optional integrations of pgdrill's engine with other software (not used by the Ansible modules)."""
