# Terraform and provider versions. The provider is pinned to one minor release: yandex-cloud/yandex
# is 0.x and changes schemas between minors. Commit .terraform.lock.hcl after the first init.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    yandex = {
      source  = "yandex-cloud/yandex"
      version = "~> 0.222.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}
