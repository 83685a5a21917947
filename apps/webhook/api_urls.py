"""URL patterns of this app (mounted by kubedoor_site.urls)."""

urlpatterns: list = []
