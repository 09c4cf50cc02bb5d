#!/bin/bash
# Submits the audit as a Slurm job array of DTDCERT_SHARDS shards (default 4), then the merge,
# which waits until every shard has finished. Run it in the folder that is to hold the results.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DTDCERT_SHARDS=${DTDCERT_SHARDS:-4}
array=$(sbatch --parsable --array=1-"$DTDCERT_SHARDS" "$here/audit-shards.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$array" "$here/merge.sbatch")
merge=${merge%%;*}
echo "submitted: shards job $array, merge job $merge"
