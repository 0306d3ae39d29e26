"""The web UI: plain JavaScript modules and CSS shipped inside the package (no build step, no CDN)."""
