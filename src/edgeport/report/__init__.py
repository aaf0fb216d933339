"""Reports: JSON/CSV/Markdown/HTML writers and plots."""
