"""Archive formats of a succeeded job: searchable PDF, hOCR and ALTO, built from its result."""
