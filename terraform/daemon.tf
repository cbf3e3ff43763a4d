# Optional: lifeboat's daemon (`lifeboat run`) as a one-task ECS Fargate service in
# the control region, its journal on encrypted EFS and its logs in CloudWatch.
#
# Shape, and why:
# - The task runs as the lifeboat role, so the daemon holds exactly lifeboat's list of
#   actions. Pulling the image and shipping logs are ECS's work, done under a separate
#   execution role the container never sees.
# - The journal (SQLite) must outlive the task: it holds the fencing epoch and the
#   progress of a run that a replacement task resumes (DESIGN.md, safety invariants 1
#   and 3). Fargate's disk does not survive a restart, so the journal lives on EFS,
#   mounted at /var/lib/lifeboat (the daemon's default state directory, set explicitly
#   below); a policy `[journal] path` must point there too.
# - EFS is NFS, where SQLite's WAL mode is unsafe (its index lives in shared memory no
#   two hosts can share). lifeboat recognises a network filesystem when it opens the
#   journal (statfs) and uses a rollback journal with exclusive locking there: the
#   daemon holds the database lock, through EFS's NFSv4 lock leases, for as long as it
#   runs, and checks its actor lock (<journal>.lock) before every write. Only the
#   daemon opens the journal; operators reach it through its API (ECS Exec into the
#   task), never by opening the file from a second task.
# - Never two controllers: one task, and deployments stop the old task before starting
#   the new one (maximum 100 %, minimum 0 %). A task that died without stopping keeps
#   its NFS locks until EFS expires its lease (about a minute): its replacement fails
#   to open the journal until then, and ECS starts it again.
# - No ingress at all. The daemon's HTTP API listens on loopback inside the task;
#   operators use the CLI with the same role instead. Egress is HTTPS (AWS APIs, HTTP
#   probes) plus NFS to its own file system, plus whatever daemon_egress adds for
#   database and cache probes.
# - The policy is baked into the image (e.g. `FROM <lifeboat image>` plus `COPY
#   checkout.toml checkout.vars.toml /etc/lifeboat/`), so what runs is what was
#   reviewed and built; no parameter store call, no extra grant.

variable "deploy_daemon" {
  description = "Whether to run lifeboat's daemon as an ECS Fargate service in the control region. Needs daemon_image, daemon_vpc_id and daemon_subnet_ids."
  type        = bool
  default     = false
}

variable "daemon_image" {
  description = "Container image of the daemon, with the policy baked in, e.g. \"111122223333.dkr.ecr.us-east-2.amazonaws.com/checkout-lifeboat:1.4.0\". Its entrypoint is the lifeboat binary."
  type        = string
  default     = null

  validation {
    condition     = var.daemon_image == null || can(regex("^[a-z0-9][a-z0-9._/:@-]{0,254}$", coalesce(var.daemon_image, "x")))
    error_message = "daemon_image must be an image reference such as registry/repository:tag."
  }
}

variable "daemon_ecr_repository_arn" {
  description = "ARN of the ECR repository daemon_image comes from, so the execution role may pull from it and nothing else. Null when the image is in a public registry."
  type        = string
  default     = null

  validation {
    condition     = var.daemon_ecr_repository_arn == null || can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9._/-]+$", coalesce(var.daemon_ecr_repository_arn, "x")))
    error_message = "daemon_ecr_repository_arn must be an ECR repository ARN without wildcards."
  }
}

variable "daemon_policy_path" {
  description = "Path of the policy file inside the image, passed as `lifeboat run --policy`."
  type        = string
  default     = "/etc/lifeboat/policy.toml"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+\\.toml$", var.daemon_policy_path))
    error_message = "daemon_policy_path must be an absolute path to a .toml file."
  }
}

variable "daemon_vpc_id" {
  description = "VPC (in the control region) the daemon runs in."
  type        = string
  default     = null

  validation {
    condition     = var.daemon_vpc_id == null || can(regex("^vpc-[0-9a-f]{8,17}$", coalesce(var.daemon_vpc_id, "x")))
    error_message = "daemon_vpc_id must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "daemon_subnet_ids" {
  description = "Private subnets for the daemon's task and its file system, one per availability zone. They need a route to the AWS APIs (NAT or VPC endpoints) and to whatever the probes reach."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.daemon_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "daemon_subnet_ids must hold subnet IDs such as subnet-0123456789abcdef0."
  }
}

variable "daemon_egress" {
  description = "Extra TCP egress of the daemon beyond HTTPS, for probes of databases, caches or TCP endpoints, e.g. [{ description = \"Aurora\", port = 5432, cidr_blocks = [\"10.1.0.0/16\", \"10.2.0.0/16\"] }]."
  type = list(object({
    description = string
    port        = number
    cidr_blocks = list(string)
  }))
  default = []

  validation {
    condition = alltrue([
      for e in var.daemon_egress :
      length(e.description) > 0 && e.port >= 1 && e.port <= 65535 && length(e.cidr_blocks) > 0 &&
      alltrue([for c in e.cidr_blocks : can(cidrhost(c, 0))])
    ])
    error_message = "Each daemon_egress rule needs a description, a port between 1 and 65535 and at least one CIDR block."
  }
}

variable "daemon_cpu" {
  description = "Fargate CPU units of the daemon's task."
  type        = number
  default     = 256

  validation {
    condition     = contains([256, 512, 1024], var.daemon_cpu)
    error_message = "daemon_cpu must be 256, 512 or 1024; the daemon is small."
  }
}

variable "daemon_memory" {
  description = "Memory (MiB) of the daemon's task; must be a valid Fargate pairing with daemon_cpu."
  type        = number
  default     = 512

  validation {
    condition     = contains([512, 1024, 2048, 3072, 4096], var.daemon_memory)
    error_message = "daemon_memory must be 512, 1024, 2048, 3072 or 4096 MiB."
  }
}

variable "daemon_log_retention_days" {
  description = "Days the daemon's CloudWatch logs are kept; they are the audit trail beside the journal."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.daemon_log_retention_days)
    error_message = "daemon_log_retention_days must be a CloudWatch retention of at least a year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

locals {
  daemon_count = var.deploy_daemon ? 1 : 0
  daemon_name  = "${var.name}-lifeboat"
  # The daemon's user inside the container and on the file system; not root.
  daemon_uid = 10001
}

resource "terraform_data" "daemon_inputs" {
  count = local.daemon_count

  lifecycle {
    precondition {
      condition     = var.daemon_image != null && var.daemon_vpc_id != null && length(var.daemon_subnet_ids) > 0
      error_message = "deploy_daemon needs daemon_image, daemon_vpc_id and daemon_subnet_ids."
    }
  }
}

# --- encryption key for the daemon's logs and file system ----------------------------

data "aws_iam_policy_document" "daemon_key" {
  #checkov:skip=CKV_AWS_109:Key policy, not an identity policy: kms:* on "*" for the account root is the standard statement that delegates this key's administration to IAM, and "*" in a key policy means this key only.
  #checkov:skip=CKV_AWS_111:Key policy, not an identity policy: the write access is to this one key, for principals IAM already lets administer keys in this account.
  #checkov:skip=CKV_AWS_356:Key policy, not an identity policy: a key policy's Resource is always "*", meaning the key the policy is attached to.
  count = local.daemon_count

  # The account administers the key through IAM, as with every customer managed key;
  # in a key policy "*" as the resource means this key.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the daemon's log group, and nothing else, with it.
  statement {
    sid       = "CloudWatchLogsForTheDaemonLogGroup"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.control_region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.control_region}:${local.account_id}:log-group:/lifeboat/${var.name}"]
    }
  }
}

resource "aws_kms_key" "daemon" {
  count = local.daemon_count

  description             = "lifeboat daemon of ${var.name}: CloudWatch logs and the journal's file system"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.daemon_key[0].json
  tags                    = local.common_tags
}

resource "aws_kms_alias" "daemon" {
  count = local.daemon_count

  name          = "alias/${local.daemon_name}"
  target_key_id = aws_kms_key.daemon[0].key_id
}

# --- logs ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "daemon" {
  count = local.daemon_count

  name              = "/lifeboat/${var.name}"
  retention_in_days = var.daemon_log_retention_days
  kms_key_id        = aws_kms_key.daemon[0].arn
  tags              = local.common_tags
}

# --- journal storage -------------------------------------------------------------------

resource "aws_efs_file_system" "journal" {
  count = local.daemon_count

  encrypted        = true
  kms_key_id       = aws_kms_key.daemon[0].arn
  performance_mode = "generalPurpose"
  throughput_mode  = "bursting"

  tags = merge(local.common_tags, {
    Name = "${local.daemon_name}-journal"
  })
}

# Daily backups by AWS Backup's default plan for EFS.
resource "aws_efs_backup_policy" "journal" {
  count = local.daemon_count

  file_system_id = aws_efs_file_system.journal[0].id
  backup_policy {
    status = "ENABLED"
  }
}

# The daemon sees only its own directory, as its own non-root user.
resource "aws_efs_access_point" "journal" {
  count = local.daemon_count

  file_system_id = aws_efs_file_system.journal[0].id
  posix_user {
    uid = local.daemon_uid
    gid = local.daemon_uid
  }
  root_directory {
    path = "/lifeboat"
    creation_info {
      owner_uid   = local.daemon_uid
      owner_gid   = local.daemon_uid
      permissions = "0700"
    }
  }
  tags = local.common_tags
}

resource "aws_efs_mount_target" "journal" {
  for_each = var.deploy_daemon ? toset(var.daemon_subnet_ids) : toset([])

  file_system_id  = aws_efs_file_system.journal[0].id
  subnet_id       = each.value
  security_groups = [aws_security_group.journal[0].id]
}

# --- network ---------------------------------------------------------------------------

resource "aws_security_group" "daemon" {
  count = local.daemon_count

  name        = "${local.daemon_name}-daemon"
  description = "lifeboat daemon of ${var.name}: no ingress; egress to AWS APIs, probes and its journal"
  vpc_id      = var.daemon_vpc_id
  tags        = local.common_tags
}

resource "aws_vpc_security_group_egress_rule" "daemon_https" {
  count = local.daemon_count

  security_group_id = aws_security_group.daemon[0].id
  description       = "AWS APIs and HTTPS probes of both regions"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "daemon_journal" {
  count = local.daemon_count

  security_group_id            = aws_security_group.daemon[0].id
  description                  = "NFS to the journal's file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.journal[0].id
}

resource "aws_vpc_security_group_egress_rule" "daemon_extra" {
  for_each = var.deploy_daemon ? {
    for pair in flatten([
      for i, e in var.daemon_egress : [for c in e.cidr_blocks : { key = "${i}-${c}", rule = e, cidr = c }]
    ]) : pair.key => pair
  } : {}

  security_group_id = aws_security_group.daemon[0].id
  description       = each.value.rule.description
  ip_protocol       = "tcp"
  from_port         = each.value.rule.port
  to_port           = each.value.rule.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_security_group" "journal" {
  count = local.daemon_count

  name        = "${local.daemon_name}-journal"
  description = "lifeboat journal file system of ${var.name}: NFS from the daemon only"
  vpc_id      = var.daemon_vpc_id
  tags        = local.common_tags
}

resource "aws_vpc_security_group_ingress_rule" "journal_from_daemon" {
  count = local.daemon_count

  security_group_id            = aws_security_group.journal[0].id
  description                  = "NFS from the lifeboat daemon"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.daemon[0].id
}

# --- execution role: what ECS needs to start the task (not the daemon's permissions) ---

data "aws_iam_policy_document" "daemon_execution_trust" {
  count = local.daemon_count

  statement {
    sid     = "EcsTasks"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "daemon_execution" {
  count = local.daemon_count

  source_policy_documents = data.aws_iam_policy_document.daemon_execution_ecr[*].json

  statement {
    sid       = "ShipLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.daemon[0].arn}:log-stream:*"]
  }
}

data "aws_iam_policy_document" "daemon_execution_ecr" {
  count = var.deploy_daemon && var.daemon_ecr_repository_arn != null ? 1 : 0

  # GetAuthorizationToken has no resource-level permissions (the token is for the
  # whole registry), so IAM accepts only "*"; the pulls below name the repository.
  statement {
    sid       = "EcrLogin"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullDaemonImage"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [coalesce(var.daemon_ecr_repository_arn, "none")]
  }
}

resource "aws_iam_role" "daemon_execution" {
  count = local.daemon_count

  name               = "${local.daemon_name}-execution"
  description        = "ECS execution role of the lifeboat daemon of ${var.name}: pulls its image and ships its logs."
  assume_role_policy = data.aws_iam_policy_document.daemon_execution_trust[0].json
  tags               = local.common_tags
}

resource "aws_iam_role_policy" "daemon_execution" {
  count = local.daemon_count

  name   = "ecs-execution"
  role   = aws_iam_role.daemon_execution[0].id
  policy = data.aws_iam_policy_document.daemon_execution[0].json
}

# --- the service -----------------------------------------------------------------------

resource "aws_ecs_cluster" "daemon" {
  count = local.daemon_count

  name = local.daemon_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.common_tags
}

resource "aws_ecs_task_definition" "daemon" {
  count = local.daemon_count

  family                   = local.daemon_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.daemon_cpu
  memory                   = var.daemon_memory
  task_role_arn            = aws_iam_role.lifeboat.arn
  execution_role_arn       = aws_iam_role.daemon_execution[0].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "journal"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.journal[0].id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.journal[0].id
        # The access point and the security groups decide who mounts; IAM
        # authorisation would need elasticfilesystem:Client* on the task role, outside
        # lifeboat's list of actions.
        iam = "DISABLED"
      }
    }
  }

  container_definitions = jsonencode([
    {
      name                   = "lifeboat"
      image                  = var.daemon_image
      essential              = true
      command                = ["run", "--policy", var.daemon_policy_path]
      environment = [
        # The EFS mount: journals the policy does not place elsewhere live here.
        { name = "LIFEBOAT_STATE_DIR", value = "/var/lib/lifeboat" },
      ]
      # Time to reach a journaled point and release the journal's locks on a stop.
      stopTimeout = 60
      user                   = "${local.daemon_uid}:${local.daemon_uid}"
      readonlyRootFilesystem = true
      privileged             = false
      mountPoints = [
        { sourceVolume = "journal", containerPath = "/var/lib/lifeboat", readOnly = false },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.daemon[0].name
          "awslogs-region"        = local.control_region
          "awslogs-stream-prefix" = "daemon"
        }
      }
    },
  ])

  tags = local.common_tags

  depends_on = [terraform_data.daemon_inputs]
}

resource "aws_ecs_service" "daemon" {
  count = local.daemon_count

  name             = "lifeboat"
  cluster          = aws_ecs_cluster.daemon[0].id
  task_definition  = aws_ecs_task_definition.daemon[0].arn
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  desired_count    = 1

  # Stop the old controller before the new one starts: two daemons must never act at
  # once, and a short gap in watching is the lesser evil.
  deployment_maximum_percent         = 100
  deployment_minimum_healthy_percent = 0

  network_configuration {
    subnets          = var.daemon_subnet_ids
    security_groups  = [aws_security_group.daemon[0].id]
    assign_public_ip = false
  }

  tags = local.common_tags

  depends_on = [aws_efs_mount_target.journal, aws_iam_role_policy.daemon_execution]
}
