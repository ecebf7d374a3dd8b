"""Store level: camera tracklets -> store visits, store KPIs and the floor heatmap."""
