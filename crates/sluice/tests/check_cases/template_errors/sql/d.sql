select *
from t
where day = {{ ds_nodahs | sql }}
