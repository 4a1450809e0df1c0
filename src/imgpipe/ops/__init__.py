"""Operations on AWS: the Lambda zip (packaging), the stack's deploy and its index steps, and
the monthly bill of a workload (cost, at the dated list prices of prices)."""
