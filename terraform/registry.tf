# Images are pushed as cr.yandex/<registry id>/<name>:<tag> (fraudops/core/platform.yaml images.*).
resource "yandex_container_registry" "this" {
  name      = "${local.project}-registry"
  folder_id = var.folder_id
  labels    = local.labels
}
