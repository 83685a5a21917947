"""factory_boy factories for the project's models."""

from __future__ import annotations

import factory
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType

from apps.accounts.roles import roles_sync
from apps.audit.services import Actor
from apps.control.models import Cluster, Microservice


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"cluster-{n}")
    display_name = factory.LazyAttribute(lambda o: o.name.title())


class MicroserviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Microservice

    cluster = factory.SubFactory(ClusterFactory)
    namespace = "shop"
    name = factory.Sequence(lambda n: f"svc-{n}")
    replicas_measured = 2
    replicas_initial = 2
    request_cpu_m = 250
    request_mem_mib = 256
    limit_cpu_m = 1000
    limit_mem_mib = 1024


def api_actor(user) -> Actor:
    """``user`` acting through the API."""
    return Actor(user=user, name=user.get_username(), source="api")


def role_groups_ensure(*, force: bool = False) -> None:
    """Make the role groups as the roles migration does, when a transactional test flushed them.

    A flush also recreates content types and permissions under new ids, so the process's content
    type cache is dropped first.
    """
    if force or not Group.objects.filter(name__in=["viewer", "operator", "admin"]).count() == 3:
        ContentType.objects.clear_cache()
        roles_sync(django_apps)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("a-long-test-password")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            role_groups_ensure()
            self.groups.add(Group.objects.get(name=extracted))
