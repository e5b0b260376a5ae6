"""spark_jobs/demo/hello_lake.transform on a local SparkSession (no servers)."""


def test_transform_is_deterministic(local_spark):
    from spark_jobs.demo.hello_lake import transform

    rows = transform(local_spark, 8).orderBy("id").collect()
    assert [r.shape for r in rows[:5]] == ["circle", "square", "triangle", "star", "circle"]
    assert rows[7].colour == "red" and rows[7].square == 49
