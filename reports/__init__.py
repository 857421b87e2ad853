"""Run records to PDF test reports (and plots)."""
