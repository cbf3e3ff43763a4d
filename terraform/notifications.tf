# The SNS topic lifeboat's `notify` steps and alerts publish to (a `kind = "sns"`
# channel). Subscribe the pager, chat bridge or e-mail list to it outside the module.
#
# It lives in the control region, so a failure of the primary or the secondary region
# does not take the messages about that failure with it.

resource "aws_sns_topic" "notifications" {
  name = "${var.name}-lifeboat"

  # The AWS managed key for SNS: messages are encrypted at rest, and the account's
  # principals that may publish (the lifeboat role) may use the key through SNS with no
  # KMS grant of their own, which keeps the role's policy to exactly lifeboat's list.
  kms_master_key_id = "alias/aws/sns"

  tags = local.common_tags
}
