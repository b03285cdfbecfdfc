//! Which host serves a region: Security Center keeps data on two sites (China and
//! international), and every region maps to one of them (docs/sas-api.md §7.1).

/// The Security Center site a region belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `tds.cn-shanghai.aliyuncs.com`.
    China,
    /// `tds.ap-southeast-1.aliyuncs.com`.
    International,
}

const CHINA: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-nanjing",
    "cn-fuzhou",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-guangzhou",
    "cn-chengdu",
    "cn-hongkong",
    "cn-beijing-finance-1",
    "cn-hangzhou-finance",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
    "cn-heyuan-acdr-1",
    "cn-north-2-gov-1",
    "cn-qingdao-acdr-ut-1",
    "cn-shanghai-mybk",
    "cn-wuhan-lr",
    "cn-zhengzhou-jva",
];

const INTERNATIONAL: &[&str] = &[
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "eu-central-1",
    "eu-west-1",
    "us-east-1",
    "us-west-1",
    "me-east-1",
    "me-central-1",
];

/// The site of a region, or `None` for a region the map does not know.
pub fn site_of(region: &str) -> Option<Site> {
    if CHINA.contains(&region) {
        Some(Site::China)
    } else if INTERNATIONAL.contains(&region) {
        Some(Site::International)
    } else {
        None
    }
}

impl Site {
    /// Public HTTPS endpoint host.
    pub fn public_host(self) -> &'static str {
        match self {
            Site::China => "tds.cn-shanghai.aliyuncs.com",
            Site::International => "tds.ap-southeast-1.aliyuncs.com",
        }
    }

    /// VPC endpoint host (reachable only from inside Alibaba Cloud VPCs).
    pub fn vpc_host(self) -> &'static str {
        match self {
            Site::China => "tds.vpc-proxy.aliyuncs.com",
            Site::International => "tds-intl.vpc-proxy.aliyuncs.com",
        }
    }

    /// Default console base for links on this site.
    pub fn console_base(self) -> &'static str {
        match self {
            Site::China => "https://yundun.console.aliyun.com/?p=sas",
            Site::International => "https://yundun.console.alibabacloud.com/?p=sas",
        }
    }
}

/// The endpoint URL (`https://host`) for a region, or an explanation when the region is unknown.
pub fn endpoint_for(region: &str, vpc: bool) -> Result<String, String> {
    let site = site_of(region).ok_or_else(|| {
        format!(
            "unknown region `{region}`: Security Center is served from the China site (e.g. cn-hangzhou) or the international site (e.g. ap-southeast-1); set `endpoint` explicitly if this region is new"
        )
    })?;
    let host = if vpc {
        site.vpc_host()
    } else {
        site.public_host()
    };
    Ok(format!("https://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_site() {
        let table = [
            ("cn-hangzhou", false, "https://tds.cn-shanghai.aliyuncs.com"),
            ("cn-hongkong", false, "https://tds.cn-shanghai.aliyuncs.com"),
            ("cn-beijing", true, "https://tds.vpc-proxy.aliyuncs.com"),
            (
                "ap-southeast-1",
                false,
                "https://tds.ap-southeast-1.aliyuncs.com",
            ),
            (
                "eu-central-1",
                false,
                "https://tds.ap-southeast-1.aliyuncs.com",
            ),
            ("us-east-1", true, "https://tds-intl.vpc-proxy.aliyuncs.com"),
        ];
        for (region, vpc, want) in table {
            assert_eq!(endpoint_for(region, vpc).unwrap(), want, "{region}");
        }
        let err = endpoint_for("mars-1", false).unwrap_err();
        assert!(err.contains("mars-1") && err.contains("endpoint"));
    }
}
