"""``strangler init``: a first context from a Django project's models, URLconf and serializers.

Pipeline: :mod:`.django_models` and :mod:`.django_routes` read the project into a
:mod:`.spec`; :mod:`.plan_writer` writes the plan, :mod:`.routes_writer` its route-table
entries, :mod:`.skeleton` the FastAPI service package; :mod:`.generate` runs them and
:mod:`.errors` says what could not be mapped. Django is imported only inside functions.
"""
