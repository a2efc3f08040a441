# Pages of activation (destinations, syncs, decisions, experiments) arrive with their issues.
urlpatterns: list = []
