"""Sources: what brings data into raw (REST pages, public archive files) and what raw claims."""
